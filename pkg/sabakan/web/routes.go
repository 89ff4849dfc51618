package web

import (
	"net/http"

	"github.com/openneco/neco/pkg/sabakan"
)

// routes registers sabakan's inventory API. Boot content and DHCP handlers
// are registered by their packages through Handle.
func (s *Server) routes() {
	s.Handle("GET", "/version", s.getVersion)
	s.Handle("GET", "/health", s.getHealth)
	// Queries are open to every client like GET; setMachineState checks
	// allow-ips itself.
	s.add(s.http, "POST", "/graphql", s.postGraphQL, true)

	s.Handle("GET", "/api/v1/config/ipam", s.getIPAM)
	s.Handle("PUT", "/api/v1/config/ipam", s.putIPAM)
	s.Handle("GET", "/api/v1/config/dhcp", s.getDHCP)
	s.Handle("PUT", "/api/v1/config/dhcp", s.putDHCP)

	s.Handle("POST", "/api/v1/machines", s.postMachines)
	s.Handle("GET", "/api/v1/machines", s.getMachines)
	s.Handle("DELETE", "/api/v1/machines/{serial}", s.deleteMachine)
	s.Handle("GET", "/api/v1/state/{serial}", s.getState)
	s.Handle("PUT", "/api/v1/state/{serial}", s.putState)
	s.Handle("PUT", "/api/v1/labels/{serial}/{label}", s.putLabel)
	s.Handle("DELETE", "/api/v1/labels/{serial}/{label}", s.deleteLabel)
	s.Handle("PUT", "/api/v1/retire-date/{serial}", s.putRetireDate)

	s.Handle("GET", "/api/v1/logs", s.getLogs)
	s.Handle("POST", "/api/v1/logs", s.postLog)

	s.HandleTLS("PUT", "/api/v1/crypts/{serial}/{path}", s.putCrypt, true)
	s.HandleTLS("GET", "/api/v1/crypts/{serial}/{path}", s.getCrypt, true)
	s.HandleTLS("DELETE", "/api/v1/crypts/{serial}", s.deleteCrypts, false)
	s.HandleTLS("GET", "/version", s.getVersion, true)
	s.HandleTLS("GET", "/health", s.getHealth, true)
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	WriteJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
	return nil
}

// getHealth answers 200 {"health":"healthy"} when etcd answers within 5 s,
// else 500 {"health":"unhealthy","error":...} (the reference's contract).
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Store.Health(r.Context()); err != nil {
		WriteJSON(w, http.StatusInternalServerError, map[string]string{"health": "unhealthy", "error": err.Error()})
		return nil
	}
	WriteJSON(w, http.StatusOK, map[string]string{"health": "healthy"})
	return nil
}

// Body limits.
const (
	configLimit   = 64 << 10
	machinesLimit = 64 << 20
	stateLimit    = 128
	labelLimit    = 1 << 10
	dateLimit     = 128
	cryptLimit    = 4 << 10
	graphQLLimit  = 1 << 20
	logLimit      = 16 << 10
)

func (s *Server) getIPAM(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Store.IPAM(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) putIPAM(w http.ResponseWriter, r *http.Request) error {
	var c sabakan.IPAMConfig
	if err := decodeJSON(r, configLimit, &c); err != nil {
		return err
	}
	if err := s.cfg.Store.PutIPAM(r.Context(), &c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getDHCP(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Store.DHCP(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) putDHCP(w http.ResponseWriter, r *http.Request) error {
	var c sabakan.DHCPConfig
	if err := decodeJSON(r, configLimit, &c); err != nil {
		return err
	}
	if err := s.cfg.Store.PutDHCP(r.Context(), &c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
