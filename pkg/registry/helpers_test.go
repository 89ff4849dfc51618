package registry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/registry"
	"github.com/openneco/neco/pkg/testutil"
)

// testCA is a self-signed CA and a server certificate for 127.0.0.1 and
// localhost, in files, as the worker installs them from Vault.
type testCA struct {
	Pool          *x509.CertPool
	Cert, Key, CA string
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	ca, err := pki.NewCA("registry test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("boot-0", []string{"127.0.0.1", "localhost"}, pki.ServerAuth, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := testCA{Pool: x509.NewCertPool(), Cert: filepath.Join(dir, "registry.crt"), Key: filepath.Join(dir, "registry.key"), CA: filepath.Join(dir, "ca.crt")}
	c.Pool.AddCert(ca.Cert)
	for f, data := range map[string][]byte{c.Cert: certPEM, c.Key: keyPEM, c.CA: ca.CertPEM()} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// testConfig is a configuration on free loopback ports with its own
// storage directory.
func testConfig(t testing.TB, ca testCA) *registry.Config {
	t.Helper()
	cfg := registry.NewConfig()
	cfg.Public, cfg.Write, cfg.Metrics = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.StorageDir = filepath.Join(t.TempDir(), "storage")
	cfg.TLSCert, cfg.TLSKey = ca.Cert, ca.Key
	return cfg
}

// started is a registry running in this process.
type started struct {
	registry.Addrs
	cfg  *registry.Config
	ca   testCA
	stop func() error
}

func (s *started) writeHost() string  { return s.Write.String() }
func (s *started) publicHost() string { return s.Public.String() }

// publicClient trusts the test CA.
func (s *started) publicClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: s.publicTransport()}
}

func (s *started) publicTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.ca.Pool}
	return tr
}

// startRegistry runs registry.Serve with cfg until the test ends.
func startRegistry(t testing.TB, ca testCA, cfg *registry.Config) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan registry.Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- registry.Serve(ctx, cfg, func(a registry.Addrs) { ready <- a }) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("registry did not stop within 60 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("registry stopped with %v", err)
		}
	})
	select {
	case a := <-ready:
		return &started{Addrs: a, cfg: cfg, ca: ca, stop: stop}
	case err := <-done:
		t.Fatalf("registry.Serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("registry not listening after 60 s")
	}
	return nil
}

// tree lists every file under dir with its size, for before/after
// comparisons.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %d %v", rel, fi.Size(), d.IsDir()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// registryBinary builds cmd/neco-registry once per test binary.
func registryBinary(t testing.TB) string {
	return testutil.GoBinary(t, "github.com/openneco/neco/cmd/neco-registry")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
