package nodeexec

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrConnLost: the SSH connection broke, or was closed. When it broke
	// under a running command, whether the command completed is unknown.
	ErrConnLost = errors.New("connection lost")
	// ErrOutputTooLarge: a command wrote more than MaxOutput bytes to its
	// standard output; the session was closed.
	ErrOutputTooLarge = errors.New("output too large")
	// ErrChecksumMismatch: the data a node received for Install or
	// WriteFile does not have the expected sha256; nothing was installed.
	ErrChecksumMismatch = errors.New("sha256 mismatch")
	// ErrPoolClosed: the Pool was closed.
	ErrPoolClosed = errors.New("pool closed")
)

// ExitError is a command that ended unsuccessfully on the node.
type ExitError struct {
	Cmd string
	// Status is the exit status; 128+n when the command was killed by
	// signal n, as a shell reports it.
	Status int
	// Signal is the name of the signal that killed the command ("TERM"),
	// if one did.
	Signal string
	// Stderr is the end of the command's standard error, at most
	// StderrTail bytes.
	Stderr []byte
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, "exit status %d", e.Status)
	}
	if msg := strings.TrimSpace(string(e.Stderr)); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// notStartedError marks an error that happened before the node could have
// started the command: a Pool may run it again on a new connection.
type notStartedError struct{ err error }

func (e *notStartedError) Error() string { return e.err.Error() }
func (e *notStartedError) Unwrap() error { return e.err }
