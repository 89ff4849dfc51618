package nodeexec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openneco/neco/pkg/cke/nodeexec/sshdtest"
)

func newPool(t *testing.T, srv *sshdtest.Server) *Pool {
	p := NewPool(config(srv))
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolRedialsAfterRestart(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	p := newPool(t, srv)

	if out, err := p.Run(ctxT(t), srv.Addr, "echo one", nil); err != nil || string(out) != "one\n" {
		t.Fatalf("%q, %v", out, err)
	}
	c1, err := p.Client(ctxT(t), srv.Addr)
	if err != nil {
		t.Fatal(err)
	}

	srv.Restart() // the node rebooted: the connection is gone
	if out, err := p.Run(ctxT(t), srv.Addr, "echo two", nil); err != nil || string(out) != "two\n" {
		t.Fatalf("after restart: %q, %v", out, err)
	}
	c2, err := p.Client(ctxT(t), srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 || c1.alive() {
		t.Error("no new connection")
	}
	if err := p.WriteFile(ctxT(t), srv.Addr, filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644); err != nil {
		t.Error(err)
	}
}

func TestPoolRetriesUnstartedCommand(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	p := newPool(t, srv)
	c1, err := p.Client(ctxT(t), srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// The connection broke, and nothing has noticed yet: the Pool hands
	// out the broken client, whose Run fails before the start.
	c1.conn.Close()
	dead := &Client{
		addr: c1.addr, cfg: c1.cfg, conn: c1.conn, done: make(chan struct{}),
		sessions: make(chan struct{}, MaxSessions), killers: make(chan struct{}, killSessions),
	}
	n := p.nodes[srv.Addr]
	n.lock <- struct{}{}
	n.client = dead
	<-n.lock

	if out, err := p.Run(ctxT(t), srv.Addr, "echo retried", nil); err != nil || string(out) != "retried\n" {
		t.Fatalf("%q, %v", out, err)
	}
	if dead.alive() {
		t.Error("the broken client is not marked gone")
	}
	if c, _ := p.Client(ctxT(t), srv.Addr); c == dead || c == c1 {
		t.Error("no new connection")
	}
}

func TestPoolDoesNotRetryStartedCommand(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	p := newPool(t, srv)

	log := filepath.Join(t.TempDir(), "log")
	arg := uniqueSleep(t)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Run(ctxT(t), srv.Addr, fmt.Sprintf("echo ran >>%s; exec sleep %s", log, arg), nil)
		errc <- err
	}()
	eventually(t, "sleeping", func() bool { return running(arg) })
	srv.Restart()
	if err := waitErr(t, errc); !errors.Is(err, ErrConnLost) {
		t.Errorf("error %v, want ErrConnLost", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "ran\n" {
		t.Errorf("the command ran %d times", strings.Count(string(b), "ran"))
	}
}

func TestPoolConcurrent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	p := newPool(t, srv)

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	clients := make([]*Client, n)
	for i := range n {
		wg.Go(func() {
			// Different spellings of one address share the client.
			addr := srv.Addr
			if i%2 == 1 {
				addr = strings.Replace(addr, "127.0.0.1", "[127.0.0.1]", 1)
			}
			out, err := p.Run(ctxT(t), addr, fmt.Sprintf("echo %d", i), nil)
			if err == nil && string(out) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("output %q", out)
			}
			errs[i] = err
			clients[i], _ = p.Client(ctxT(t), addr)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("command %d: %v", i, err)
		}
		if clients[i] != clients[0] {
			t.Errorf("command %d: another client", i)
		}
	}
}

func TestPoolDropAndClose(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	p := newPool(t, srv)

	c1, err := p.Client(ctxT(t), srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p.Drop(srv.Addr)
	if c1.alive() {
		t.Error("dropped client still open")
	}
	c2, err := p.Client(ctxT(t), srv.Addr)
	if err != nil || c2 == c1 {
		t.Fatalf("after Drop: %v, same client %v", err, c2 == c1)
	}

	p.Close()
	if c2.alive() {
		t.Error("client open after Close")
	}
	if _, err := p.Run(ctxT(t), srv.Addr, "true", nil); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("error %v, want ErrPoolClosed", err)
	}
}
