package server_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/sabakan/server"
)

// TestConfigFile loads a configuration written for the reference boot
// server, with a flag overriding one key.
func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	os.WriteFile(path, []byte(`
http: 0.0.0.0:10080
https: 0.0.0.0:10443
metrics: 0.0.0.0:10081
dhcp-bind: 0.0.0.0:67
ipxe-efi-path: /usr/lib/ipxe/ipxe.efi
data-dir: /var/lib/sabakan
advertise-url: http://10.69.0.3:10080
advertise-url-https: https://10.69.0.3:10443
allow-ips: [127.0.0.1, "::1", 10.69.0.0/26]
enable-playground: false
server-cert: /etc/sabakan/server.crt
server-key: /etc/sabakan/server.key
metrics-leader-election-ttl: 30s
etcd:
  endpoints: [https://10.69.0.3:2379, https://10.69.0.195:2379]
  prefix: /sabakan/
  tls-ca-file: /etc/neco/server.crt
`), 0o644)
	cfg := server.NewConfig()
	fs := flag.NewFlagSet("sabakan", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse([]string{"-http", "127.0.0.1:8080", "-allow-ips", "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := config.Load(fs, path, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:8080" || cfg.DHCPBind != "0.0.0.0:67" || cfg.LeaderTTL != "30s" ||
		len(cfg.Etcd.Endpoints) != 2 || cfg.Etcd.TLSCAFile != "/etc/neco/server.crt" || !slices.Equal(cfg.AllowIPs, []string{"192.0.2.1"}) {
		t.Errorf("config = %+v, etcd %+v", cfg, cfg.Etcd)
	}

	bad := server.NewConfig()
	bad.AdvertiseURL = "10.69.0.3:10080"
	bad.AllowIPs = []string{"10.0.0.0/40"}
	if err := bad.Validate(); err == nil {
		t.Error("a URL without scheme, a missing advertise-url-https and a bad CIDR were accepted")
	}
	os.WriteFile(path, []byte("htp: 0.0.0.0:1\n"), 0o644)
	if err := config.Load(flag.NewFlagSet("x", flag.ContinueOnError), path, server.NewConfig()); err == nil {
		t.Error("a misspelled key was accepted")
	}
}
