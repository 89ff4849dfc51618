// Package registrytest runs a real neco-registry (pkg/registry) in the
// test's process, for the tests of the packages that push to or pull from
// it. It is test scaffolding: production code never imports it.
package registrytest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/registry"
)

// Registry is a running registry.
type Registry struct {
	registry.Addrs
	// StorageDir is where it keeps blobs and manifests.
	StorageDir string
	// CAPEM is the CA of the public listener's certificate.
	CAPEM []byte
}

// WriteHost is host:port of the loopback write listener.
func (r *Registry) WriteHost() string { return r.Write.String() }

// Start runs a registry on free loopback ports until the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	ca, err := pki.NewCA("registrytest", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := registry.NewConfig()
	cfg.Public, cfg.Write, cfg.Metrics = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.StorageDir = filepath.Join(dir, "storage")
	// A self-signed CA certificate serves the public listener.
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, data := range map[string][]byte{cfg.TLSCert: ca.CertPEM(), cfg.TLSKey: keyPEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan registry.Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- registry.Serve(ctx, cfg, func(a registry.Addrs) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
	})
	select {
	case a := <-ready:
		return &Registry{Addrs: a, StorageDir: cfg.StorageDir, CAPEM: ca.CertPEM()}
	case err := <-done:
		t.Fatalf("registry: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("registry not listening after 30 s")
	}
	return nil
}
