package cke

import "errors"

// Sentinel errors; callers wrap them and test with errors.Is. ckecli maps
// each to one exit code.
var (
	// ErrInvalid: a cluster.yml, constraints or resource that does not
	// validate. Nothing is stored or applied.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a concurrent writer changed what a guarded write read.
	ErrConflict = errors.New("conflict")
)
