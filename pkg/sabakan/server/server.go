// Package server wires the sabakan daemon: etcd client, store, web API on the
// HTTP and HTTPS listeners, metrics, the janitor election, and network boot
// (DHCP server, boot content and its replication, Ignition), which package
// netboot plugs in.
//
// # Network boot
//
// Run takes one Boot function, netboot.Extension in cmd/sabakan (package
// netboot imports this one, so the daemon cannot name it here). It is called
// once at start, after the store is open and before the listeners accept
// connections. It adds the boot routes the one way there is,
// env.Web.RegisterBoot(&bootapi.API{...}), which puts them behind the web
// server's access control, actor and error rendering; and starts its
// long-running parts with env.Go, which run until the daemon stops (their
// context is cancelled; they return nil then; an error stops the daemon).
// env.Store reads the IPAM and DHCP configuration and machines, each read
// reflecting every write acknowledged before it; env.Store.AuditOp gives the
// audit entry to put into its own etcd transactions so that a mutation and
// its audit entry commit together; env.Client is the etcd client scoped to
// the sabakan prefix for its own keys (listed in docs/etcd.md).
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/cybozu-go/well"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
	"github.com/openneco/neco/pkg/version"
)

// Env is what the Boot function gets.
type Env struct {
	Config   *Config
	Store    *store.Store
	Client   *clientv3.Client
	Web      *web.Server
	Registry *prometheus.Registry
	Hostname string

	env *well.Environment
}

// Go runs f until the daemon stops. An error returned by f stops the daemon.
func (e *Env) Go(f func(ctx context.Context) error) { e.env.Go(f) }

// Boot plugs network boot into the daemon; see the package documentation.
type Boot func(ctx context.Context, env *Env) error

// apiReadTimeout is the HTTP listener's whole-request read deadline, only a
// fallback: the web layer moves the connection's read deadline as a body
// arrives, failing a body that pauses longer than body-idle-timeout however
// long the whole upload takes (web.Config.BodyIdleTimeout).
const apiReadTimeout = time.Hour

// Run runs the daemon until ctx ends, then drains the listeners and returns
// nil; it returns an error when starting fails or a component fails.
func Run(ctx context.Context, cfg *Config, boot Boot) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	allow, _ := web.ParseAllowIPs(cfg.AllowIPs)
	leaderTTL, _ := time.ParseDuration(cfg.LeaderTTL)
	regTTL, _ := time.ParseDuration(cfg.RegistrationTTL)
	bodyIdle, _ := time.ParseDuration(cfg.BodyIdleTimeout)
	hostname, _ := os.Hostname()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data-dir: %w", err)
	}
	tlsCfg, err := loadOrCreateCert(cfg)
	if err != nil {
		return err
	}

	client, err := etcdutil.New(cfg.Etcd)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer client.Close()
	st, err := openStore(ctx, client, store.Options{Hostname: hostname, RegistrationTTL: regTTL})
	if err != nil {
		return err
	}
	defer st.Close()

	reg := daemon.NewRegistry()
	reg.MustRegister(st.Collector())
	srv := web.New(web.Config{Store: st, AllowedIPs: allow, Hostname: hostname, Version: version.Version, Registry: reg, BodyIdleTimeout: bodyIdle})

	env := well.NewEnvironment(ctx)
	e := &Env{Config: cfg, Store: st, Client: client, Web: srv, Registry: reg, Hostname: hostname, env: env}
	if boot != nil {
		if err := boot(ctx, e); err != nil {
			env.Cancel(err)
			env.Stop()
			env.Wait()
			return fmt.Errorf("network boot: %w", err)
		}
	}

	start := func(name string, f func() (net.Addr, error)) error {
		addr, err := f()
		if err != nil {
			return fmt.Errorf("%s listener: %w", name, err)
		}
		slog.Info("sabakan: listening", "listener", name, "address", addr.String())
		return nil
	}
	err = start("http", func() (net.Addr, error) {
		return daemon.Server{Addr: cfg.HTTP, Handler: srv.Handler(), ReadTimeout: apiReadTimeout, ConnState: srv.ConnState}.Start(env)
	})
	if err == nil {
		err = start("https", func() (net.Addr, error) {
			return daemon.Server{Addr: cfg.HTTPS, Handler: srv.TLSHandler(), ReadTimeout: time.Minute, ConnState: srv.TLSConnState, TLSConfig: tlsCfg}.Start(env)
		})
	}
	if err == nil {
		err = start("metrics", func() (net.Addr, error) {
			return daemon.Server{Addr: cfg.Metrics, Handler: daemon.MetricsMux(reg, st.Health)}.Start(env)
		})
	}
	if err != nil {
		env.Cancel(err)
	}
	env.Go(func(ctx context.Context) error {
		return st.RunJanitor(ctx, hostname, int(max(leaderTTL/time.Second, 1)))
	})
	env.Stop()
	err = env.Wait()
	if well.IsSignaled(err) || err == context.Canceled {
		return nil
	}
	return err
}

// openStore opens the store, waiting for etcd while it is unreachable.
func openStore(ctx context.Context, client *clientv3.Client, opts store.Options) (*store.Store, error) {
	backoff := time.Second
	for {
		st, err := store.Open(ctx, client, opts)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		slog.Warn("sabakan: cannot open the store yet; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
