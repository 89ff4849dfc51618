package nodeexec

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Stopping a command no longer wanted. The SSH "signal" request cannot do
// it: OpenSSH refuses it for root logins, and closing a session does not
// end its command either. But sshd starts each command in a new session,
// whose process group is the login shell's PID: each command first writes
// that PID to its standard error, behind pgidMarker, and a cancelled
// command's process group is killed with kill(1) in a second session.

const (
	pgidMarker = "nodeexec-pgid="
	// markerLimit bounds the standard error searched for the marker (a
	// login shell's start-up files may write before it).
	markerLimit = 4 << 10
	// killGrace is how long a cancelled command has between SIGTERM and
	// SIGKILL, and how long its session has to close afterwards.
	killGrace = 10 * time.Second
	// killSessions are sessions kept for kill(1), beyond MaxSessions.
	killSessions = 2
)

// wrap makes cmd announce its process group first.
func wrap(cmd string) string {
	return "echo " + pgidMarker + "$$ >&2\n" + cmd
}

// stderrWriter takes the marker out of a command's standard error and
// keeps the end of the rest.
type stderrWriter struct {
	tail tailBuffer

	mu      sync.Mutex
	head    []byte // start of the stream, until the marker is found
	settled bool
	pgid    int
	known   chan struct{} // closed once pgid is found or will not be
}

func newStderrWriter() *stderrWriter {
	return &stderrWriter{tail: tailBuffer{max: StderrTail}, known: make(chan struct{})}
}

func (w *stderrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.settled {
		return w.tail.Write(p)
	}
	w.head = append(w.head, p...)
	for {
		line, rest, ok := bytes.Cut(w.head, []byte("\n"))
		if !ok {
			break
		}
		if pgid, ok := bytes.CutPrefix(line, []byte(pgidMarker)); ok {
			w.pgid, _ = strconv.Atoi(string(pgid))
			w.settle(rest)
			return len(p), nil
		}
		w.tail.Write(w.head[:len(line)+1])
		w.head = rest
	}
	if len(w.head) > markerLimit {
		w.settle(w.head)
	}
	return len(p), nil
}

// settle ends the search for the marker; rest is ordinary output.
func (w *stderrWriter) settle(rest []byte) {
	w.tail.Write(rest)
	w.head = nil
	w.settled = true
	close(w.known)
}

// close ends the search when the stream has ended.
func (w *stderrWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.settled {
		w.settle(w.head)
	}
}

func (w *stderrWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tail.bytes()
}

func (w *stderrWriter) processGroup() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pgid
}

// stop ends a command that is no longer wanted, SIGTERM then SIGKILL to
// its process group, and closes its session. waited yields when the
// session ends.
func (c *Client) stop(sess *ssh.Session, stderr *stderrWriter, waited <-chan error) {
	defer sess.Close()
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	select {
	case <-stderr.known:
	case <-waited:
		return
	case <-grace.C:
	}
	pgid := stderr.processGroup()
	if pgid > 1 {
		c.kill("TERM", pgid)
		select {
		case <-waited:
			return
		case <-grace.C:
		}
		c.kill("KILL", pgid)
	}
	sess.Close()
	// The node closes the session when the command is gone. Do not wait
	// for a command that could not be killed for ever: its session slot
	// is released anyway.
	grace.Reset(killGrace)
	select {
	case <-waited:
	case <-grace.C:
	case <-c.done:
	}
}

// kill sends sig to the process group pgid on the node, in a session of
// its own.
func (c *Client) kill(sig string, pgid int) {
	select {
	case c.killers <- struct{}{}:
	case <-c.done:
		return
	}
	defer func() { <-c.killers }()
	sess, err := c.conn.NewSession()
	if err != nil {
		return
	}
	defer sess.Close()
	// The group may be gone already: nothing to report.
	_ = sess.Run(fmt.Sprintf("kill -%s -- -%d 2>/dev/null", sig, pgid))
}
