package web

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// clientBody is a request body as handlers read it.
//
// A read that fails because of the client — the body ends before its
// Content-Length, the connection breaks — returns an error wrapping
// ErrIncompleteBody (and the original error), so that however deep in a
// handler it surfaces, it maps to 400 and not to a server failure.
//
// A client may pause at most idle: before each read the connection's read
// deadline is set idle ahead, so a client that stops sending fails the read
// with ErrBodyTimeout (408) and loses its connection, while a slow upload
// that keeps sending runs as long as it needs. Time the handler spends
// between reads does not count, nor after the body's end (net/http clears
// the deadline there: the client now waits for the answer).
type clientBody struct {
	io.ReadCloser
	length   int64 // the Content-Length, -1 when unknown
	read     int64
	deadline func(time.Time) error
	idle     time.Duration // 0: no deadlines (the connection is out of reach)
}

// wrapBody replaces the request body with a clientBody, unless the request
// has none, and arms its first deadline: a handler that never reads the body
// still leaves net/http's draining of it bounded. conn is the request's
// connection, or nil when unknown.
func wrapBody(w http.ResponseWriter, r *http.Request, conn net.Conn, idle time.Duration) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	b := &clientBody{ReadCloser: r.Body, length: r.ContentLength, idle: idle}
	if conn != nil {
		b.deadline = conn.SetReadDeadline
	} else {
		b.deadline = http.NewResponseController(w).SetReadDeadline
	}
	if b.deadline(time.Now().Add(idle)) != nil {
		b.idle = 0
	}
	r.Body = b
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.idle > 0 {
		b.deadline(time.Now().Add(b.idle))
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case err == nil || err == io.EOF || errors.Is(err, http.ErrBodyReadAfterClose):
		return n, err // the end, or a handler's own mistake
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, fmt.Errorf("%w: no byte of the body came for %s (after %d bytes)", ErrBodyTimeout, b.idle, b.read)
	case errors.Is(err, io.ErrUnexpectedEOF) && b.length >= 0:
		return n, fmt.Errorf("%w: the body ended after %d of %d bytes (Content-Length): %w", ErrIncompleteBody, b.read, b.length, err)
	}
	return n, fmt.Errorf("%w: reading the body failed after %d bytes: %w", ErrIncompleteBody, b.read, err)
}

// conns are one listener's open HTTP/1 connections by remote address, fed
// by its http.Server's ConnState hook. Handlers find their connection here
// to set read deadlines: cybozu-go/well's access-log writer hides it from
// http.ResponseController, and well replaces the request's context, so
// neither Unwrap nor ConnContext reaches it. A remote address names one
// live connection of a listener.
type conns struct{ m sync.Map }

func (c *conns) connState(conn net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.m.Store(conn.RemoteAddr().String(), conn)
	case http.StateHijacked, http.StateClosed:
		c.m.CompareAndDelete(conn.RemoteAddr().String(), conn)
	}
}

// of returns the connection of an HTTP/1 request, or nil. (An HTTP/2
// connection's deadline would be every stream's.)
func (c *conns) of(r *http.Request) net.Conn {
	if r.ProtoMajor != 1 {
		return nil
	}
	conn, _ := c.m.Load(r.RemoteAddr)
	nc, _ := conn.(net.Conn)
	return nc
}

// ConnState is the ConnState hook of the HTTP listener's http.Server; it
// lets request bodies time out when the client pauses
// (Config.BodyIdleTimeout). Without it the server falls back on
// http.ResponseController, which response writer wrappers may defeat.
func (s *Server) ConnState(conn net.Conn, st http.ConnState) { s.httpConns.connState(conn, st) }

// TLSConnState is ConnState for the HTTPS listener.
func (s *Server) TLSConnState(conn net.Conn, st http.ConnState) { s.httpsConns.connState(conn, st) }
