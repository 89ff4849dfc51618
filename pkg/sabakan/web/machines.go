package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

func (s *Server) postMachines(w http.ResponseWriter, r *http.Request) error {
	data, err := ReadBody(r, machinesLimit)
	if err != nil {
		return err
	}
	specs, err := sabakan.DecodeMachineSpecs(data)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Register(r.Context(), specs); err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, map[string]any{"status": http.StatusCreated, "machines": len(specs)})
	return nil
}

func (s *Server) getMachines(w http.ResponseWriter, r *http.Request) error {
	q, err := sabakan.ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	n, body, err := s.cfg.Store.QueryJSON(r.Context(), q)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: no machine matches the query", sabakan.ErrNotFound)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

// serial returns the {serial} path value, validated.
func serial(r *http.Request) (string, error) {
	s := r.PathValue("serial")
	if !sabakan.IsValidSerial(s) {
		return "", badValue("serial", s, fmt.Sprintf("want 1-%d printable characters without '/' or spaces", sabakan.MaxSerialLength))
	}
	return s, nil
}

func (s *Server) deleteMachine(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteMachine(r.Context(), sr); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	m, err := s.cfg.Store.Machine(r.Context(), sr)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, m.Status.State)
	return nil
}

func (s *Server) putState(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	text, err := readText(r, stateLimit, "new state")
	if err != nil {
		return err
	}
	state, err := sabakan.ParseState(text)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.SetState(r.Context(), sr, state); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) putLabel(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	data, err := ReadBody(r, labelLimit)
	if err != nil {
		return err
	}
	value := trimNewline(string(data))
	if err := s.cfg.Store.SetLabel(r.Context(), sr, r.PathValue("label"), value); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// trimNewline drops one trailing line break, as echo and here-strings add.
func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
	}
	return s
}

func (s *Server) deleteLabel(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.RemoveLabel(r.Context(), sr, r.PathValue("label")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// ParseRetireDate accepts RFC 3339 (the API's format) and YYYY-MM-DD (what
// the reference CLI takes).
func ParseRetireDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, badValue("retire date", s, "want RFC 3339 (2030-01-02T00:00:00Z) or YYYY-MM-DD")
}

func (s *Server) putRetireDate(w http.ResponseWriter, r *http.Request) error {
	sr, err := serial(r)
	if err != nil {
		return err
	}
	text, err := readText(r, dateLimit, "retire date")
	if err != nil {
		return err
	}
	date, err := ParseRetireDate(text)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SetRetireDate(r.Context(), sr, date); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
