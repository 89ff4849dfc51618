package nodeexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Pool keeps one Client per node address, dialled on first use and again
// when its connection broke. All nodes of a Pool share one Config: nodes
// logging in as different users need one Pool per user. A Pool is safe for
// concurrent use.
type Pool struct {
	cfg Config

	mu     sync.Mutex
	closed bool
	nodes  map[string]*poolNode
}

type poolNode struct {
	lock   chan struct{} // held (one slot filled) while client is read or replaced
	client *Client
}

// NewPool returns an empty Pool dialling with cfg.
func NewPool(cfg Config) *Pool {
	return &Pool{cfg: cfg, nodes: map[string]*poolNode{}}
}

// Client returns the connected Client for addr, dialling it if there is
// none or its connection is gone.
func (p *Pool) Client(ctx context.Context, addr string) (*Client, error) {
	key, err := CanonicalAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("nodeexec: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("nodeexec: %s: %w", key, ErrPoolClosed)
	}
	n := p.nodes[key]
	if n == nil {
		n = &poolNode{lock: make(chan struct{}, 1)}
		p.nodes[key] = n
	}
	p.mu.Unlock()

	select {
	case n.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("nodeexec: %s: dial: %w", key, context.Cause(ctx))
	}
	defer func() { <-n.lock }()
	if n.client != nil && n.client.alive() {
		return n.client, nil
	}
	if n.client != nil {
		n.client.Close()
		n.client = nil
	}
	c, err := Dial(ctx, key, p.cfg)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	closed, dropped := p.closed, p.nodes[key] != n
	p.mu.Unlock()
	switch {
	case closed:
		c.Close()
		return nil, fmt.Errorf("nodeexec: %s: %w", key, ErrPoolClosed)
	case dropped:
		c.Close()
		return nil, fmt.Errorf("nodeexec: %s: dropped from the pool while dialling", key)
	}
	n.client = c
	return c, nil
}

// Run runs cmd on the node at addr like Client.Run. When the connection
// turns out to be broken before the command could start, Run dials again
// once and retries; a command the node may have started is never retried.
func (p *Pool) Run(ctx context.Context, addr, cmd string, stdin io.Reader) ([]byte, error) {
	var out []byte
	err := p.do(ctx, addr, func(c *Client) error {
		var err error
		out, err = c.Run(ctx, cmd, stdin)
		return err
	})
	return out, err
}

// WriteFile is Client.WriteFile on the node at addr, retried like Run.
func (p *Pool) WriteFile(ctx context.Context, addr, path string, data []byte, mode os.FileMode) error {
	return p.do(ctx, addr, func(c *Client) error {
		return c.WriteFile(ctx, path, data, mode)
	})
}

// Install is Client.Install on the node at addr, retried like Run (no byte
// of src is read before the command started).
func (p *Pool) Install(ctx context.Context, addr, path string, src io.Reader, size int64, sha256hex string, progress func(done, total int64)) error {
	return p.do(ctx, addr, func(c *Client) error {
		return c.Install(ctx, path, src, size, sha256hex, progress)
	})
}

func (p *Pool) do(ctx context.Context, addr string, f func(*Client) error) error {
	c, err := p.Client(ctx, addr)
	if err != nil {
		return err
	}
	err = f(c)
	var notStarted *notStartedError
	if !errors.As(err, &notStarted) || !errors.Is(err, ErrConnLost) {
		return err
	}
	// The broken client is marked gone: Client dials a new one.
	if c, err = p.Client(ctx, addr); err != nil {
		return err
	}
	return f(c)
}

// Drop closes and forgets the connection to addr, for a node that left
// the cluster.
func (p *Pool) Drop(addr string) {
	key, err := CanonicalAddr(addr)
	if err != nil {
		return
	}
	p.mu.Lock()
	n := p.nodes[key]
	delete(p.nodes, key)
	p.mu.Unlock()
	if n != nil {
		n.close()
	}
}

// Close closes every connection; the Pool cannot be used afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	nodes := p.nodes
	p.nodes = map[string]*poolNode{}
	p.mu.Unlock()
	for _, n := range nodes {
		n.close()
	}
	return nil
}

// close waits for a dial in progress and closes the client.
func (n *poolNode) close() {
	n.lock <- struct{}{}
	if n.client != nil {
		n.client.Close()
		n.client = nil
	}
	<-n.lock
}
