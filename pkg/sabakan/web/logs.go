package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

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

// logRequest is the body of POST /api/v1/logs: an action a program took on
// a machine outside sabakan, to be recorded in the audit log.
type logRequest struct {
	Category sabakan.AuditCategory `json:"category"`
	Instance string                `json:"instance"`
	Action   string                `json:"action"`
	Detail   string                `json:"detail"`
}

// decodeLogRequest parses and validates the body of POST /api/v1/logs.
// Every error it returns wraps sabakan.ErrBadRequest.
func decodeLogRequest(data []byte) (*logRequest, error) {
	// encoding/json would turn invalid UTF-8 into U+FFFD silently.
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: the body is not valid UTF-8", sabakan.ErrBadRequest)
	}
	var req logRequest
	if err := unmarshalStrict(data, &req); err != nil {
		return nil, err
	}
	if !req.Category.Appendable() {
		return nil, badValue("category", string(req.Category), fmt.Sprintf("clients may append entries of %v only", sabakan.AppendableCategories()))
	}
	if !sabakan.IsValidSerial(req.Instance) {
		return nil, badValue("instance", req.Instance, fmt.Sprintf("want the serial of a machine: 1-%d printable characters without '/' or spaces", sabakan.MaxSerialLength))
	}
	if !sabakan.IsValidAuditAction(req.Action) {
		return nil, badValue("action", req.Action, fmt.Sprintf("want a lowercase letter, then at most %d lowercase letters, digits or '-'", sabakan.MaxAuditActionLength-1))
	}
	if len(req.Detail) > sabakan.MaxAuditDetailBytes {
		return nil, fmt.Errorf("%w: invalid detail: %d bytes, at most %d are accepted", sabakan.ErrBadRequest, len(req.Detail), sabakan.MaxAuditDetailBytes)
	}
	if !sabakan.IsValidAuditDetail(req.Detail) {
		return nil, fmt.Errorf("%w: invalid detail: want valid UTF-8", sabakan.ErrBadRequest)
	}
	return &req, nil
}

// postLog appends an audit entry for an action taken on a machine outside
// sabakan (an extension of the reference API; docs/sabakan-api.md). It
// answers 201 with the entry as stored.
func (s *Server) postLog(w http.ResponseWriter, r *http.Request) error {
	data, err := ReadBody(r, logLimit)
	if err != nil {
		return err
	}
	req, err := decodeLogRequest(data)
	if err != nil {
		return err
	}
	e, err := s.cfg.Store.AppendAudit(r.Context(), req.Instance, req.Category, req.Action, req.Detail)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, e)
	return nil
}
