package nodeexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

const (
	// MaxOutput bounds the standard output Run collects.
	MaxOutput = 16 << 20
	// StderrTail is how much of a command's standard error an ExitError
	// keeps: the end, where the reason usually is.
	StderrTail = 4 << 10
)

// Run runs cmd through the login user's shell on the node, with stdin (may
// be nil) as its standard input, and returns its standard output. A
// command that exits unsuccessfully is an *ExitError, returned with the
// output it wrote; more than MaxOutput bytes of output is
// ErrOutputTooLarge; a connection that broke is ErrConnLost.
//
// When ctx ends (or cfg.CommandTimeout passes), Run returns at once; in
// the background, the command's process group (the command and what it
// started, unless that left the group) gets SIGTERM, SIGKILL if it is
// still running 10 s later, and its session is closed.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	out, err := c.run(ctx, cmd, stdin)
	if err != nil {
		return out, fmt.Errorf("nodeexec: %s: run %q: %w", c.addr, cmd, err)
	}
	return out, nil
}

// run is Run without the context in its errors.
func (c *Client) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	if d := c.cfg.CommandTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d,
			fmt.Errorf("command timeout %s: %w", d, context.DeadlineExceeded))
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	select {
	case c.sessions <- struct{}{}:
	case <-c.done:
		return nil, &notStartedError{c.lost(errClosed)}
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	release := func() { <-c.sessions }

	sess, err := c.conn.NewSession()
	if err != nil {
		release()
		var refused *ssh.OpenChannelError
		if errors.As(err, &refused) {
			return nil, fmt.Errorf("open session: %w", err)
		}
		return nil, &notStartedError{c.lost(err)}
	}
	stdout := &cappedBuffer{max: MaxOutput, overflow: func() { cancel(ErrOutputTooLarge) }}
	stderr := newStderrWriter()
	sess.Stdout, sess.Stderr = stdout, stderr
	var in io.WriteCloser
	if stdin != nil {
		if in, err = sess.StdinPipe(); err != nil {
			sess.Close()
			release()
			return nil, err
		}
	}
	if err := sess.Start(wrap(cmd)); err != nil {
		sess.Close()
		release()
		// The node may have received the command: not retried.
		return nil, c.classify(err)
	}
	if in != nil {
		go feed(ctx, in, stdin)
	}

	waited := make(chan error, 1)
	go func() {
		err := sess.Wait()
		stderr.close()
		waited <- err
	}()
	select {
	case err := <-waited:
		sess.Close()
		release()
		if stdout.overflowed {
			return nil, ErrOutputTooLarge
		}
		var exit *ssh.ExitError
		switch {
		case err == nil:
			return stdout.buf.Bytes(), nil
		case errors.As(err, &exit):
			return stdout.buf.Bytes(), &ExitError{
				Cmd:    cmd,
				Status: exit.ExitStatus(),
				Signal: exit.Signal(),
				Stderr: stderr.bytes(),
			}
		default:
			// No exit status: the connection broke under the command.
			return nil, c.lost(err)
		}
	case <-ctx.Done():
		go func() {
			defer release()
			c.stop(sess, stderr, waited)
		}()
		return nil, context.Cause(ctx)
	}
}

// classify turns an error of a started session into ErrConnLost when the
// connection is gone.
func (c *Client) classify(err error) error {
	if errors.Is(err, io.EOF) || !c.alive() {
		return c.lost(err)
	}
	return err
}

// feed copies r to the command's standard input until r ends or ctx does,
// then closes it.
func feed(ctx context.Context, w io.WriteCloser, r io.Reader) {
	defer w.Close()
	// A write error means the command is gone; its status tells the rest.
	_, _ = io.Copy(w, ctxReader{ctx, r})
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// cappedBuffer keeps up to max bytes; beyond, it calls overflow once and
// drops the rest, still accepting it so the session keeps flowing until it
// is closed.
type cappedBuffer struct {
	buf        bytes.Buffer
	max        int
	overflowed bool
	overflow   func()
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.overflowed {
		return len(p), nil
	}
	if b.buf.Len()+len(p) > b.max {
		b.overflowed = true
		b.buf = bytes.Buffer{}
		b.overflow()
		return len(p), nil
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) bytes() []byte { return bytes.Clone(b.buf) }
