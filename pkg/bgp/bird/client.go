package bird

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client talks to one BIRD through its control socket (what birdc does).
// Each command opens its own connection, so a Client is safe for
// concurrent use and survives BIRD restarts.
type Client struct {
	// Socket is the path of BIRD's control socket (bird -s).
	Socket string
	// Timeout bounds one command when ctx has no deadline; zero means 10 s.
	Timeout time.Duration
}

// maxReplyLines bounds a reply so a runaway answer cannot eat memory.
const maxReplyLines = 1 << 20

// Do sends one command and returns BIRD's reply. A reply that reports an
// error (8xxx, 9xxx) is returned together with its *Error.
func (c *Client) Do(ctx context.Context, command string) (Reply, error) {
	if strings.ContainsAny(command, "\r\n") {
		return nil, fmt.Errorf("bird: command %q contains a line break", command)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("bird: connect to %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	r := bufio.NewReader(conn)
	hello, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird: %s: greeting: %w", c.Socket, err)
	}
	if !hello.Has(codeWelcome) {
		return nil, fmt.Errorf("%w: %s: unexpected greeting %v", ErrMalformed, c.Socket, hello)
	}
	if _, err := conn.Write([]byte(command + "\n")); err != nil {
		return nil, fmt.Errorf("bird: %s: send %q: %w", c.Socket, command, err)
	}
	reply, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird: %s: %q: %w", c.Socket, command, err)
	}
	return reply, reply.Err()
}

// readReply reads lines up to and including the final one.
func readReply(r *bufio.Reader) (Reply, error) {
	var reply Reply
	prev := 0
	for len(reply) < maxReplyLines {
		s, err := r.ReadString('\n')
		if err != nil {
			return reply, err
		}
		l, final, err := ParseLine(strings.TrimSuffix(s, "\n"), prev)
		if err != nil {
			return reply, err
		}
		if l.Code < 0 {
			continue
		}
		reply = append(reply, l)
		prev = l.Code
		if final {
			return reply, nil
		}
	}
	return reply, fmt.Errorf("%w: more than %d lines", ErrMalformed, maxReplyLines)
}

// Ping checks that BIRD answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "show status")
	return err
}

// quote renders a file name for a BIRD command.
func quote(path string) (string, error) {
	if strings.ContainsAny(path, "\"\\\n") {
		return "", fmt.Errorf("bird: file name %q contains a quote, backslash or newline", path)
	}
	return `"` + path + `"`, nil
}

// Check has BIRD parse the configuration file at path without applying it
// (configure check). The returned *Error carries BIRD's message, which
// names the file, line and column.
func (c *Client) Check(ctx context.Context, path string) error {
	q, err := quote(path)
	if err != nil {
		return err
	}
	reply, err := c.Do(ctx, "configure check "+q)
	if err != nil {
		return err
	}
	if !reply.Has(codeConfigOK) {
		return fmt.Errorf("%w: configure check: %v", ErrMalformed, reply)
	}
	return nil
}

// Configure has BIRD switch to the configuration file at path. BIRD
// restarts only the protocols whose configuration changed; if it rejects
// the file, the running configuration stays in force and the *Error is
// returned.
func (c *Client) Configure(ctx context.Context, path string) error {
	q, err := quote(path)
	if err != nil {
		return err
	}
	reply, err := c.Do(ctx, "configure "+q)
	if err != nil {
		return err
	}
	// 0003 Reconfigured, 0004 in progress, 0005 queued.
	if !reply.Has(codeReconfigured) && !reply.Has(4) && !reply.Has(5) {
		return fmt.Errorf("%w: configure: %v", ErrMalformed, reply)
	}
	return nil
}
