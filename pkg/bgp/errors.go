package bgp

import "errors"

// Sentinel errors; wrapped with context, checked with errors.Is.
var (
	// ErrInvalidIdentity: the machine, the IPAM configuration or the AS plan
	// is invalid or they disagree, so the node cannot be configured.
	ErrInvalidIdentity = errors.New("invalid identity")
	// ErrInvalidSettings: a timer or another agent setting is out of range.
	ErrInvalidSettings = errors.New("invalid settings")
)
