package netboot

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan/server"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDaemon runs the real daemon with the extension and walks an operator
// through the boot setup over HTTP, with the audit log recording it.
func TestDaemon(t *testing.T) {
	etcdtest.Client(t) // empties the prefix
	dir := t.TempDir()
	cfg := server.NewConfig()
	cfg.HTTP, cfg.HTTPS, cfg.Metrics = freePort(t), freePort(t), freePort(t)
	cfg.DHCPBind = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ServerCert, cfg.ServerKey = filepath.Join(dir, "crt"), filepath.Join(dir, "key")
	cfg.AdvertiseURL = "http://" + cfg.HTTP
	cfg.AdvertiseURLHTTPS = "https://" + cfg.HTTPS
	cfg.IPXEPath = filepath.Join(dir, "ipxe.efi")
	cfg.Etcd = etcdutil.NewConfig("/" + t.Name() + "/")
	cfg.Etcd.Endpoints = []string{etcdtest.Endpoint()}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, Extension) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	base := cfg.AdvertiseURL + "/api/v1"
	call := func(method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		req.Header.Set("X-Sabakan-User", "tester")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(cfg.AdvertiseURL + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("sabakan did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}

	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
		want               string
	}{
		{"PUT", "/config/ipam", `{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/16","node-ipv4-range-size":6,"node-ipv4-range-mask":26,"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-offset":"0.0.1.0","bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`, nil, 200, ""},
		{"POST", "/machines", `[{"serial":"qemu1","rack":0,"role":"worker","bmc":{"type":"IPMI-2.0"}}]`, nil, 201, ""},
		{"PUT", "/assets/hello", "hi", []string{"Content-Type", "text/plain"}, 201, `"id":"1"`},
		{"PUT", "/kernel_params/coreos", "console=ttyS0", nil, 200, ""},
		{"PUT", "/ignitions/worker/1", `{"version":"3.4","template":{"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,{{.Spec.Serial}}"}}]}}}`, nil, 201, ""},
		{"PUT", "/ignitions/worker/2", `{"version":"3.4","template":{"storage":{"files":[{"path":"x"}]}}}`, nil, 400, "absolute"},
		{"GET", "/boot/coreos/ipxe/qemu1", "", nil, 200, "coreos.config.url=" + base + "/boot/ignitions/qemu1/1 console=ttyS0"},
		{"GET", "/boot/ignitions/qemu1/1", "", nil, 200, "data:,qemu1"},
		{"GET", "/assets/hello", "", nil, 200, "hi"},
		{"GET", "/nope", "", nil, 404, ""},
	}
	for _, s := range steps {
		status, body := call(s.method, s.path, s.body, s.hdr...)
		if status != s.status || !strings.Contains(body, s.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", s.method, s.path, status, body, s.status, s.want)
		}
	}
	// Changes are audited with the user.
	_, logs := call("GET", "/logs", "")
	for _, want := range []string{`"category":"assets"`, `"category":"ignition"`, `"user":"tester"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs)
		}
	}
}
