package etcdutil_test

import (
	"context"
	"errors"
	"flag"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func TestUpdateConcurrentIncrements(t *testing.T) {
	ctx := context.Background()
	const writers, each = 8, 20
	var wg sync.WaitGroup
	for range writers {
		// One client per writer, as separate daemons would have.
		c := etcdtest.NewClient(t, t.Name()+"/")
		wg.Go(func() {
			for range each {
				_, err := etcdutil.Update(ctx, c, "counter", func(cur []byte) ([]byte, error) {
					n, _ := strconv.Atoi(string(cur))
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	resp, err := etcdtest.Client(t).Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Kvs[0].Value); got != strconv.Itoa(writers*each) {
		t.Errorf("counter = %s, want %d: an increment was lost", got, writers*each)
	}
}

func TestUpdateNoChange(t *testing.T) {
	c := etcdtest.Client(t)
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	_, err := etcdutil.Update(ctx, c, "k", func([]byte) ([]byte, error) { return nil, etcdutil.ErrNoChange })
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := c.Get(ctx, "k")
	if resp.Kvs[0].Version != 1 {
		t.Errorf("key rewritten although the function asked for no change")
	}
	boom := errors.New("boom")
	if _, err := etcdutil.Update(ctx, c, "k", func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the function's error", err)
	}
}

func TestNamespaceIsolation(t *testing.T) {
	ctx := context.Background()
	a := etcdtest.NewClient(t, t.Name()+"/a/")
	b := etcdtest.NewClient(t, t.Name()+"/b/")
	if _, err := a.Put(ctx, "key", "from-a"); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Get(ctx, "key")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("namespace b sees a's key: %s", resp.Kvs[0].Value)
	}
}

func TestRequestTimeout(t *testing.T) {
	cfg := etcdutil.NewConfig(t.Name() + "/")
	cfg.Endpoints = []string{etcdtest.Endpoint()}
	cfg.RequestTimeout = "1ns"
	c, err := etcdutil.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(context.Background(), "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with a 1ns request timeout: err = %v, want deadline exceeded", err)
	}
	_, err = c.Txn(context.Background()).Then(clientv3.OpGet("x")).Commit()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Txn with a 1ns request timeout: err = %v, want deadline exceeded", err)
	}
}

func TestLeaderFencing(t *testing.T) {
	ctx := context.Background()
	c1 := etcdtest.NewClient(t, t.Name()+"/")
	c2 := etcdtest.NewClient(t, t.Name()+"/")

	l1, err := etcdutil.Campaign(ctx, c1, "leader", "one", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l1.Do(ctx, nil, clientv3.OpPut("owner", "one")); err != nil {
		t.Fatalf("leader write: %v", err)
	}
	if v, _ := etcdutil.CurrentLeader(ctx, c2, "leader"); v != "one" {
		t.Errorf("CurrentLeader = %q, want one", v)
	}

	// A conflicting comparison is not a loss of leadership.
	_, err = l1.Do(ctx, []clientv3.Cmp{etcdutil.Absent("owner")}, clientv3.OpPut("owner", "x"))
	if !errors.Is(err, etcdutil.ErrConflict) {
		t.Errorf("err = %v, want ErrConflict", err)
	}

	won := make(chan *etcdutil.Leader)
	go func() {
		l2, err := etcdutil.Campaign(ctx, c2, "leader", "two", 5)
		if err != nil {
			t.Error(err)
		}
		won <- l2
	}()
	select {
	case <-won:
		t.Fatal("second campaigner won while the first still leads")
	case <-time.After(300 * time.Millisecond):
	}

	// Take the first leader's key away behind its back, as an expired lease would.
	if _, err := c1.Delete(ctx, l1.Key()); err != nil {
		t.Fatal(err)
	}
	l2 := <-won
	if l2 == nil {
		t.FailNow()
	}
	if _, err := l1.Do(ctx, nil, clientv3.OpPut("owner", "one-again")); !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("deposed leader's write: err = %v, want ErrNotLeader", err)
	}
	if _, err := l2.Do(ctx, nil, clientv3.OpPut("owner", "two")); err != nil {
		t.Errorf("new leader's write: %v", err)
	}
	resp, _ := c1.Get(ctx, "owner")
	if got := string(resp.Kvs[0].Value); got != "two" {
		t.Errorf("owner = %s, want two", got)
	}
	if err := l2.Resign(ctx); err != nil {
		t.Error(err)
	}
}

func TestEnsureSchema(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Client(t)

	// A fresh store is stamped without migrating.
	var ran atomic.Int32
	migrations := map[int]etcdutil.Migration{
		1: func(ctx context.Context, c *clientv3.Client) error {
			ran.Add(1)
			_, err := c.Put(ctx, "migrated-1", "yes")
			return err
		},
		2: func(ctx context.Context, c *clientv3.Client) error {
			ran.Add(1)
			return nil
		},
	}
	if err := etcdutil.EnsureSchema(ctx, c, "version", 2, migrations); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Errorf("migrations ran on a fresh store")
	}

	// An old store is migrated exactly once even with concurrent starters.
	if _, err := c.Put(ctx, "version", "1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		c := etcdtest.NewClient(t, t.Name()+"/")
		wg.Go(func() {
			if err := etcdutil.EnsureSchema(ctx, c, "version", 3, migrations); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 2 {
		t.Errorf("%d migration steps ran, want 2 (1→2, 2→3)", ran.Load())
	}
	resp, _ := c.Get(ctx, "version")
	if string(resp.Kvs[0].Value) != "3" {
		t.Errorf("version = %s, want 3", resp.Kvs[0].Value)
	}

	err := etcdutil.EnsureSchema(ctx, c, "version", 2, migrations)
	if !errors.Is(err, etcdutil.ErrSchemaTooNew) {
		t.Errorf("older binary on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestConfigFlags(t *testing.T) {
	cfg := etcdutil.NewConfig("/sabakan/")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.AddFlags(fs)
	err := fs.Parse([]string{"-etcd-endpoints", "https://a:2379, https://b:2379", "-etcd-prefix", "/p/", "-etcd-timeout", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Endpoints) != 2 || cfg.Endpoints[1] != "https://b:2379" || cfg.Prefix != "/p/" || cfg.Timeout != "3s" {
		t.Errorf("flags not applied: %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*etcdutil.Config)
		ok     bool
	}{
		{"defaults", func(*etcdutil.Config) {}, true},
		{"no endpoints", func(c *etcdutil.Config) { c.Endpoints = nil }, false},
		{"bad timeout", func(c *etcdutil.Config) { c.Timeout = "soon" }, false},
		{"negative request timeout", func(c *etcdutil.Config) { c.RequestTimeout = "-1s" }, false},
		{"cert without key", func(c *etcdutil.Config) { c.TLSCertFile = "/x.crt" }, false},
		{"cert and key", func(c *etcdutil.Config) { c.TLSCertFile, c.TLSKeyFile = "/x.crt", "/x.key" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := etcdutil.NewConfig("/")
			tt.modify(cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
