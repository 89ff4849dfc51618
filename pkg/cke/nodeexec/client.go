package nodeexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// MaxSessions is how many commands one Client runs at a time; more wait.
// OpenSSH refuses sessions beyond its MaxSessions (10 by default) on one
// connection.
const MaxSessions = 8

// tcpKeepAlive is the TCP keepalive period of connections to nodes.
const tcpKeepAlive = 15 * time.Second

var errClosed = errors.New("client closed")

// Client is an SSH connection to one node. It is safe for concurrent use.
type Client struct {
	addr     string
	cfg      Config
	conn     *ssh.Client
	sessions chan struct{} // one slot per session open on the node
	killers  chan struct{} // the same, for sessions that kill commands

	done     chan struct{} // closed when the connection is gone
	doneOnce sync.Once
	mu       sync.Mutex
	cause    error // why the connection is gone
}

// Dial connects to the node at addr (host or host:port, port 22 by
// default), checks its host key against cfg.HostKeys and logs in; the host
// key of a node without one pinned is pinned once logged in. ctx and
// cfg.DialTimeout bound all of it. The Client must be closed.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	hostport, err := CanonicalAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("nodeexec: %w", err)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("nodeexec: %s: dial: %w", hostport, err)
	}
	conn, err := dial(ctx, hostport, &cfg)
	if err != nil {
		return nil, fmt.Errorf("nodeexec: %s: dial: %w", hostport, err)
	}
	c := &Client{
		addr:     hostport,
		cfg:      cfg,
		conn:     conn,
		sessions: make(chan struct{}, MaxSessions),
		killers:  make(chan struct{}, killSessions),
		done:     make(chan struct{}),
	}
	go func() {
		err := conn.Wait()
		if err == nil {
			err = errors.New("connection closed by the node")
		}
		c.setGone(err)
	}()
	if d := cfg.keepAlive(); d > 0 {
		go c.keepAlive(d)
	}
	return c, nil
}

func dial(ctx context.Context, addr string, cfg *Config) (*ssh.Client, error) {
	d := cfg.dialTimeout()
	ctx, cancel := context.WithTimeoutCause(ctx, d,
		fmt.Errorf("not connected and logged in within %s: %w", d, context.DeadlineExceeded))
	defer cancel()

	pinned, found, err := cfg.HostKeys.Lookup(addr)
	if err != nil {
		return nil, fmt.Errorf("look up host key: %w", err)
	}
	if !found {
		conn, offered, err := handshake(ctx, addr, cfg, nil, nil)
		if err != nil {
			return nil, err
		}
		if err := pinKey(cfg.HostKeys, addr, offered); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}

	key, err := ssh.ParsePublicKey(pinned)
	if err != nil {
		return nil, fmt.Errorf("pinned host key: %w", err)
	}
	conn, _, err := handshake(ctx, addr, cfg, pinned, hostKeyAlgorithms(key))
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" {
		// The node no longer has a key of the pinned type. Connect again
		// accepting any type, only to tell which key it offers instead.
		conn, _, err = handshake(ctx, addr, cfg, pinned, nil)
	}
	return conn, err
}

// handshake connects and logs in. A node whose host key is not pinned
// (pinned nil) is accepted and its key returned; otherwise a different key
// is a HostKeyChangedError. algos restricts the host key algorithms.
func handshake(ctx context.Context, addr string, cfg *Config, pinned []byte, algos []string) (*ssh.Client, ssh.PublicKey, error) {
	d := net.Dialer{KeepAlive: tcpKeepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, context.Cause(ctx)
		}
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })

	var offered ssh.PublicKey
	var changed *HostKeyChangedError
	cc := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyAlgorithms: algos,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			offered = key
			if pinned != nil && !bytes.Equal(key.Marshal(), pinned) {
				changed = hostKeyChanged(addr, pinned, key)
				return changed
			}
			return nil
		},
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cc)
	if !stop() {
		// ctx ended: AfterFunc closed the connection.
		if err == nil {
			sc.Close()
		}
		return nil, nil, context.Cause(ctx)
	}
	switch {
	case changed != nil:
		nc.Close()
		return nil, nil, changed
	case err != nil:
		nc.Close()
		return nil, nil, err
	}
	return ssh.NewClient(sc, chans, reqs), offered, nil
}

// Addr is the node's address, as host:port.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection; commands still running fail with
// ErrConnLost.
func (c *Client) Close() error {
	c.setGone(errClosed)
	return nil
}

// setGone records why the connection is gone and closes it; the first
// cause stays.
func (c *Client) setGone(cause error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	c.mu.Unlock()
	c.doneOnce.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

// alive reports whether the connection is still believed to work.
func (c *Client) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// lost marks the connection as gone and returns an ErrConnLost error
// saying why (err, unless something earlier said more).
func (c *Client) lost(err error) error {
	c.setGone(err)
	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	return fmt.Errorf("%w: %v", ErrConnLost, cause)
}

// keepAlive sends a keepalive request every interval and closes the
// connection when one is not answered within the next interval.
func (c *Client) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		replied := make(chan error, 1)
		go func() {
			// OpenSSH answers unknown global requests with a failure:
			// any answer proves the node alive.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timeout := time.NewTimer(interval)
		select {
		case err := <-replied:
			timeout.Stop()
			if err != nil {
				c.setGone(fmt.Errorf("keepalive: %w", err))
				return
			}
		case <-timeout.C:
			c.setGone(fmt.Errorf("no answer to a keepalive within %s", interval))
			return
		case <-c.done:
			timeout.Stop()
			return
		}
	}
}
