package sabakan

import "errors"

// Sentinel errors. Callers wrap them with context and test with errors.Is;
// the web layer maps each to one HTTP status in one place.
var (
	// ErrBadRequest: the input is malformed or invalid (400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: the named object does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the current state (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the backing store cannot be reached (503).
	ErrUnavailable = errors.New("service unavailable")
	// ErrLengthRequired: an upload without its size (411).
	ErrLengthRequired = errors.New("length required")
	// ErrTooLarge: an upload over its size limit (413).
	ErrTooLarge = errors.New("too large")
)
