package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/cybozu-go/well"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the only storage driver
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/openneco/neco/pkg/daemon"
)

// Addrs are the addresses the listeners are bound to (useful with port 0).
type Addrs struct {
	Public, Write, Metrics net.Addr
}

// Run serves the registry until ctx ends, then drains the requests in
// flight and returns nil.
func Run(ctx context.Context, cfg *Config) error { return Serve(ctx, cfg, nil) }

// Serve is Run, calling listening (when not nil) with the listeners'
// addresses once all three accept connections.
func Serve(ctx context.Context, cfg *Config, listening func(Addrs)) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	uploadTimeout, shutdownTimeout := cfg.durations()
	if err := prepareStorage(cfg.StorageDir); err != nil {
		return err
	}
	certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	bridgeLogs()

	app, err := newApp(ctx, cfg.StorageDir)
	if err != nil {
		return err
	}
	defer app.Shutdown()

	reg := daemon.NewRegistry()
	m := newMetrics(reg)
	var up atomic.Bool
	health := func(ctx context.Context) error {
		if !up.Load() {
			return errors.New("listeners not started yet")
		}
		return checkStorage(cfg.StorageDir)
	}
	mux := http.NewServeMux()
	gather := prometheus.Gatherers{reg, distributionMetrics{}}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.Handle("GET /health", daemon.HealthHandler(health))

	env := well.NewEnvironment(ctx)
	var addrs Addrs
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
	for _, l := range []struct {
		name string
		srv  daemon.Server
		addr *net.Addr
	}{
		{"public", daemon.Server{Addr: cfg.Public, Handler: m.instrument("public", readOnly(app)), TLSConfig: tlsCfg, ShutdownTimeout: shutdownTimeout}, &addrs.Public},
		{"write", daemon.Server{Addr: cfg.Write, Handler: m.instrument("write", app), ReadTimeout: uploadTimeout, ShutdownTimeout: shutdownTimeout}, &addrs.Write},
		{"metrics", daemon.Server{Addr: cfg.Metrics, Handler: mux, ShutdownTimeout: shutdownTimeout}, &addrs.Metrics},
	} {
		a, lerr := l.srv.Start(env)
		if lerr != nil {
			err = fmt.Errorf("%s listener %s: %w", l.name, l.srv.Addr, lerr)
			break
		}
		*l.addr = a
		slog.Info("registry: listening", "listener", l.name, "address", a.String())
	}
	if err != nil {
		env.Cancel(err)
	} else {
		up.Store(true)
		if listening != nil {
			listening(addrs)
		}
	}
	env.Stop()
	err = env.Wait()
	if well.IsSignaled(err) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newApp makes the distribution registry over the filesystem driver at
// dir: no authentication (the listeners decide who may write), no
// deletion, no redirects, upload purging of week-old uploads, an in-memory
// blob descriptor cache.
func newApp(ctx context.Context, dir string) (app *handlers.App, err error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	c := &configuration.Configuration{Version: "0.1"}
	c.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": dir},
		"delete":     configuration.Parameters{"enabled": false},
		"redirect":   configuration.Parameters{"disable": true},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{
			"enabled": true, "age": "168h", "interval": "24h", "dryrun": false,
		}},
	}
	// Upload state tokens are signed with it; one process serves every
	// upload, so a random secret does (uploads in flight across a restart
	// start again, as clients do anyway).
	c.HTTP.Secret = hex.EncodeToString(secret)
	c.Catalog.MaxEntries = 1000
	// NewApp panics on a configuration it cannot use.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("distribution registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, c), nil
}

// prepareStorage creates dir when missing and makes sure the registry can
// list, write and remove files in it.
func prepareStorage(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("storage-dir: %w", err)
	}
	if err := checkStorage(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("storage-dir %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// checkStorage tells whether dir can be listed (the health check).
func checkStorage(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("storage-dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage-dir %s is not a directory", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage-dir %s is not readable: %w", dir, err)
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("storage-dir %s is not readable: %w", dir, err)
	}
	return nil
}

// distributionMetrics are the distribution registry's own metrics
// (registry_storage_action_seconds: the time of each storage driver call),
// which it registers with Prometheus's default registry.
type distributionMetrics struct{}

func (distributionMetrics) Gather() ([]*dto.MetricFamily, error) {
	all, err := prometheus.DefaultGatherer.Gather()
	var out []*dto.MetricFamily
	for _, f := range all {
		if strings.HasPrefix(f.GetName(), "registry_") {
			out = append(out, f)
		}
	}
	return out, err
}
