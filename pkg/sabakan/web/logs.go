package web

import (
	"bufio"
	"encoding/json"
	"net/http"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

// getLogs streams audit entries as JSON Lines: since=YYYYMMDD and
// until=YYYYMMDD (excluded) select UTC days.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) error {
	var since, until time.Time
	for name, dst := range map[string]*time.Time{"since": &since, "until": &until} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse("20060102", v)
		if err != nil {
			return badValue(name, v, "want YYYYMMDD")
		}
		*dst = t
	}
	var bw *bufio.Writer
	enc := func(e *sabakan.AuditEntry) error {
		if bw == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			bw = bufio.NewWriterSize(w, 64<<10)
		}
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		return enc.Encode(e)
	}
	if err := s.cfg.Store.Logs(r.Context(), since, until, enc); err != nil {
		return err
	}
	if bw == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	return bw.Flush()
}
