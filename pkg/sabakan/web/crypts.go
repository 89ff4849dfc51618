package web

import (
	"fmt"
	"net/http"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/store"
)

func cryptPath(r *http.Request) (string, error) {
	p := r.PathValue("path")
	if !store.IsValidCryptPath(p) {
		return "", badValue("disk path", p, fmt.Sprintf("want 1-%d printable characters without '/'", store.MaxCryptPathBytes))
	}
	return p, nil
}

func (s *Server) putCrypt(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	p, err := cryptPath(r)
	if err != nil {
		return err
	}
	key, err := ReadBody(r, cryptLimit)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("%w: the body must be the key (1-%d bytes)", sabakan.ErrBadRequest, store.MaxCryptKeyBytes)
	}
	if err := s.cfg.Store.PutCrypt(r.Context(), sr, p, key); err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, map[string]any{"status": http.StatusCreated, "path": p})
	return nil
}

func (s *Server) getCrypt(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	p, err := cryptPath(r)
	if err != nil {
		return err
	}
	key, err := s.cfg.Store.Crypt(r.Context(), sr, p)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	w.Write(key)
	return nil
}

func (s *Server) deleteCrypts(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	paths, err := s.cfg.Store.DeleteCrypts(r.Context(), sr)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, paths)
	return nil
}
