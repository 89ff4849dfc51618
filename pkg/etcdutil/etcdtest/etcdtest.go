// Package etcdtest runs one embedded etcd server per test binary and hands
// each test a client confined to a namespace of its own, so tests of a
// package share a server but never each other's keys.
//
//	func TestMain(m *testing.M) { etcdtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		client := etcdtest.Client(t) // keys under "TestX/"
//	}
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/openneco/neco/pkg/etcdutil"
)

var (
	endpoint string
	cleaned  sync.Map // of cleanKey: prefixes already emptied by a test
)

type cleanKey struct {
	t      testing.TB
	prefix string
}

// Main starts the embedded etcd, runs the tests and exits with their status.
func Main(m *testing.M) {
	stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(2)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// Endpoint is the client URL of the embedded etcd, for tests that start
// processes of their own against it.
func Endpoint() string {
	if endpoint == "" {
		panic("etcdtest: Main was not called from TestMain")
	}
	return endpoint
}

// Client returns a client whose keys live under t.Name()+"/", closed when
// the test ends.
func Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, t.Name()+"/")
}

// NewClient returns a client scoped to prefix, closed when t ends. Several
// clients with one prefix behave like several daemons sharing one etcd. The
// first client a test makes for a prefix empties it, so that re-runs with
// -count start clean.
func NewClient(t testing.TB, prefix string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, seen := cleaned.LoadOrStore(cleanKey{t, prefix}, true); !seen {
		if _, err := c.Delete(context.Background(), prefix, clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	etcdutil.Scope(c, prefix, 10*time.Second)
	return c
}

func start() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	clientURL, err := freeURL()
	if err != nil {
		return nil, err
	}
	peerURL, err := freeURL()
	if err != nil {
		return nil, err
	}

	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 30s")
	}
	endpoint = clientURL.String()
	return func() {
		e.Close()
		os.RemoveAll(dir)
	}, nil
}

// freeURL returns an http URL on a loopback port that was free a moment ago.
func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return url.Parse("http://" + strings.TrimPrefix(l.Addr().String(), "tcp://"))
}
