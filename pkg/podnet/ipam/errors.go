package ipam

import "errors"

// Errors of the allocator, wrapped with what they are about: check them
// with errors.Is.
var (
	// ErrPoolNotFound: the API has no pool of that name, or it is being
	// deleted.
	ErrPoolNotFound = errors.New("no such address pool")
	// ErrPoolExhausted: every block of the pool is owned (by this node or
	// others) and this node's blocks of it are full.
	ErrPoolExhausted = errors.New("address pool exhausted")
	// ErrPoolConflict: the pool is invalid (podnet.ValidatePool) or
	// overlaps an earlier pool (podnet.Overlaps), and is never allocated
	// from.
	ErrPoolConflict = errors.New("address pool conflict")
	// ErrAddressConflict: an address this node's pods use is in a block
	// that another node owns.
	ErrAddressConflict = errors.New("address conflict")
	// ErrNodeNotFound: the API has no Node of this node's name.
	ErrNodeNotFound = errors.New("node not found")
	// ErrIncomplete: Start restored the node's state but some uses it was
	// given (named in the error); the allocator works with the others.
	ErrIncomplete = errors.New("state restored in part")
)
