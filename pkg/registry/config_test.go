package registry_test

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/registry"
)

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(c *registry.Config)
		want string // in the error; "" means valid
	}{
		{"defaults", func(*registry.Config) {}, ""},
		{"write on ::1", func(c *registry.Config) { c.Write = "[::1]:5001" }, ""},
		{"write on 127.0.0.2", func(c *registry.Config) { c.Write = "127.0.0.2:5001" }, ""},
		{"write on every address", func(c *registry.Config) { c.Write = ":5001" }, "loopback"},
		{"write on 0.0.0.0", func(c *registry.Config) { c.Write = "0.0.0.0:5001" }, "loopback"},
		{"write on a node address", func(c *registry.Config) { c.Write = "10.69.0.3:5001" }, "loopback"},
		{"write on a name", func(c *registry.Config) { c.Write = "localhost:5001" }, "not an IP address"},
		{"no port", func(c *registry.Config) { c.Public = "0.0.0.0" }, "public"},
		{"port out of range", func(c *registry.Config) { c.Metrics = "0.0.0.0:70000" }, "out of range"},
		{"one port twice", func(c *registry.Config) { c.Metrics = "0.0.0.0:5000" }, "port 5000"},
		{"one port on two loopback addresses", func(c *registry.Config) { c.Public = "127.0.0.1:5000"; c.Write = "127.0.0.2:5000" }, ""},
		{"no storage", func(c *registry.Config) { c.StorageDir = "" }, "storage-dir"},
		{"no certificate", func(c *registry.Config) { c.TLSCert = "" }, "tls-cert-file"},
		{"bad duration", func(c *registry.Config) { c.ShutdownTimeout = "soon" }, "shutdown-timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := registry.NewConfig()
			tt.edit(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one about %q", err, tt.want)
			}
		})
	}
}

// TestServeRefusesBadStorage: a storage directory that is a file, or
// under one, stops Serve before it listens, with the key named.
func TestServeRefusesBadStorage(t *testing.T) {
	ca := newTestCA(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		cfg := testConfig(t, ca)
		cfg.StorageDir = dir
		if err := registry.Serve(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "storage-dir") {
			t.Errorf("storage %s: %v", dir, err)
		}
	}
	if os.Geteuid() != 0 {
		dir := filepath.Join(t.TempDir(), "locked")
		if err := os.Mkdir(dir, 0); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, ca)
		cfg.StorageDir = dir
		if err := registry.Serve(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "not readable") {
			t.Errorf("unreadable storage: %v", err)
		}
	}
	cfg := testConfig(t, ca)
	cfg.TLSKey = filepath.Join(t.TempDir(), "missing.key")
	if err := registry.Serve(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing key: %v", err)
	}
}

// TestShippedTemplate renders etc/neco-registry.yml as neco-worker does and
// loads it as neco-registry does: it is valid, and its addresses are those
// pkg/bootserver gives the programs that talk to the registry.
func TestShippedTemplate(t *testing.T) {
	tmpl, err := template.New("neco-registry.yml").Option("missingkey=error").ParseFiles("../../etc/neco-registry.yml")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]any{"LRN": 0, "Address": "10.69.0.3", "Version": "2026.01.01-1", "Servers": nil}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := registry.NewConfig()
	fs := flag.NewFlagSet("neco-registry", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := config.Load(fs, file, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := bootserver.NewPaths("/")
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	def := registry.NewConfig()
	for _, c := range []struct{ name, got, want string }{
		{"public port", strconv.Itoa(port(cfg.Public)), strconv.Itoa(bootserver.RegistryPort)},
		{"default public port", strconv.Itoa(port(def.Public)), strconv.Itoa(bootserver.RegistryPort)},
		{"write", cfg.Write, bootserver.RegistryWriteAddr},
		{"default write", def.Write, bootserver.RegistryWriteAddr},
		{"metrics port", strconv.Itoa(port(cfg.Metrics)), strconv.Itoa(bootserver.RegistryMetricsPort)},
		{"health URL", "http://127.0.0.1:" + strconv.Itoa(port(cfg.Metrics)) + "/health", bootserver.RegistryHealthURL},
		{"certificate", cfg.TLSCert, p.RegistryCert},
		{"key", cfg.TLSKey, p.RegistryKey},
		{"default certificate", def.TLSCert, p.RegistryCert},
		{"storage", cfg.StorageDir, registry.DefaultStorageDir},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

// FuzzValidate: whatever the addresses, Validate does not panic, and a
// configuration it accepts has its write listener on a loopback address.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5001", ":5001", "[::1]:0", "[::ffff:127.0.0.1]:1", "0.0.0.0:5001", "localhost:1", "1.2.3.4:99999", "[fe80::1%eth0]:5"} {
		f.Add(s, "0.0.0.0:5000")
	}
	f.Fuzz(func(t *testing.T, write, public string) {
		c := registry.NewConfig()
		c.Write, c.Public = write, public
		if c.Validate() != nil {
			return
		}
		host, _, err := net.SplitHostPort(write)
		if err != nil {
			t.Fatalf("accepted write %q: %v", write, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			t.Fatalf("accepted write %q, not on loopback", write)
		}
	})
}
