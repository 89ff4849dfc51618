package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// clientBody is a request body as handlers read it. A read that fails
// because of the client — the body ends before its Content-Length, the
// connection breaks — returns an error wrapping ErrIncompleteBody (and the
// original error), so that however deep in a handler it surfaces, it maps to
// 400 and not to a server failure.
type clientBody struct {
	io.ReadCloser
	length int64 // the Content-Length, -1 when unknown
	read   int64
}

// wrapBody replaces the request body with a clientBody, unless the request
// has none.
func wrapBody(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	r.Body = &clientBody{ReadCloser: r.Body, length: r.ContentLength}
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err == nil || err == io.EOF || errors.Is(err, http.ErrBodyReadAfterClose) {
		return n, err // the end, or a handler's own mistake
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && b.length >= 0 {
		return n, fmt.Errorf("%w: the body ended after %d of %d bytes (Content-Length): %w", ErrIncompleteBody, b.read, b.length, err)
	}
	return n, fmt.Errorf("%w: reading the body failed after %d bytes: %w", ErrIncompleteBody, b.read, err)
}
