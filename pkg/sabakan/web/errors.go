package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/openneco/neco/pkg/sabakan"
)

// Errors of the HTTP layer, next to the model's sentinels.
var (
	// ErrForbidden: the client may not use this method here (403).
	ErrForbidden = errors.New("forbidden")
	// ErrMethodNotAllowed: the path does not support the method (405).
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrIncompleteBody: the client did not send the whole request body: it
	// ended before its Content-Length, or the connection broke (400).
	ErrIncompleteBody = errors.New("incomplete request body")
	// ErrBodyTimeout: the client paused the request body for longer than
	// Config.BodyIdleTimeout (408).
	ErrBodyTimeout = errors.New("request body timeout")
)

// StatusOf is the HTTP status for err: the one place errors become statuses.
func StatusOf(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, sabakan.ErrBadRequest), errors.Is(err, ErrIncompleteBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, sabakan.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, sabakan.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, sabakan.ErrLengthRequired):
		return http.StatusLengthRequired
	case errors.Is(err, sabakan.ErrTooLarge), errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, sabakan.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is the JSON body of an error response (the reference's format).
type Error struct {
	Status  int    `json:"status"`
	Message string `json:"error"`
}

// RenderError writes err as a JSON error response with the status StatusOf
// picks. Server-side failures are logged.
func RenderError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	if status >= 500 {
		slog.Error("web: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	}
	WriteJSON(w, status, Error{Status: status, Message: err.Error()})
}

// WriteJSON writes v as a JSON response with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		json.NewEncoder(&buf).Encode(Error{Status: status, Message: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// ReadBody reads the whole request body, failing with an error that maps to
// 413 when it exceeds limit bytes.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: the body has %d bytes, at most %d are accepted", sabakan.ErrTooLarge, r.ContentLength, limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%w: the body exceeds %d bytes", sabakan.ErrTooLarge, limit)
	}
	if errors.Is(err, ErrBodyTimeout) || errors.Is(err, ErrIncompleteBody) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", sabakan.ErrBadRequest, err)
	}
	return data, nil
}

// readText reads a short plain-text body, trimmed of surrounding white space.
func readText(r *http.Request, limit int64, what string) (string, error) {
	data, err := ReadBody(r, limit)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%w: the body must be the %s", sabakan.ErrBadRequest, what)
	}
	return s, nil
}

// decodeJSON reads a JSON object body into v, rejecting unknown fields and
// trailing data.
func decodeJSON(r *http.Request, limit int64, v any) error {
	data, err := ReadBody(r, limit)
	if err != nil {
		return err
	}
	return unmarshalStrict(data, v)
}

// unmarshalStrict decodes the JSON object in data into v as decodeJSON does.
func unmarshalStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: invalid JSON body: %v", sabakan.ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the JSON body", sabakan.ErrBadRequest)
	}
	return nil
}

func errMethod(method, path string, allow []string) error {
	return fmt.Errorf("%w: %s %s (allowed: %s)", ErrMethodNotAllowed, method, path, strings.Join(allow, ", "))
}

func errForbidden(r *http.Request) error {
	return fmt.Errorf("%w: %s %s is not allowed from %s (see allow-ips)", ErrForbidden, r.Method, r.URL.Path, clientIP(r))
}

func notFoundPath(r *http.Request, tlsOnly bool) error {
	if tlsOnly {
		return fmt.Errorf("%w: %s is served on the HTTPS listener only", sabakan.ErrNotFound, r.URL.Path)
	}
	return fmt.Errorf("%w: no such API: %s", sabakan.ErrNotFound, r.URL.Path)
}

func badHeader(name, want string) error {
	return fmt.Errorf("%w: invalid %s header: %s", sabakan.ErrBadRequest, name, want)
}

func badValue(name, value, want string) error {
	return fmt.Errorf("%w: invalid %s %q: %s", sabakan.ErrBadRequest, name, value, want)
}

func itoa(n int) string { return strconv.Itoa(n) }
