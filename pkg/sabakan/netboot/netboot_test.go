package netboot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
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

// daemon is the real daemon with the extension, started for a test.
type daemon struct {
	t         *testing.T
	base      string // .../api/v1 on the HTTP listener
	baseHTTPS string // .../api/v1 on the HTTPS listener
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
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
	return &daemon{t: t, base: cfg.AdvertiseURL + "/api/v1", baseHTTPS: cfg.AdvertiseURLHTTPS + "/api/v1"}
}

// call makes a request as user "tester"; a path starting with "tls:" goes
// to the HTTPS listener. hdr holds header names and values.
func (d *daemon) call(method, path, body string, hdr ...string) (int, string) {
	d.t.Helper()
	base, client := d.base, http.DefaultClient
	if p, ok := strings.CutPrefix(path, "tls:"); ok {
		path, base = p, d.baseHTTPS
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.Header.Set("X-Sabakan-User", "tester")
	resp, err := client.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const ipamJSON = `{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/16","node-ipv4-range-size":6,"node-ipv4-range-mask":26,"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-offset":"0.0.1.0","bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`

// TestDaemon runs the real daemon with the extension and walks an operator
// through the boot setup over HTTP, with the audit log recording it.
func TestDaemon(t *testing.T) {
	d := startDaemon(t)
	base, call := d.base, d.call
	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
		want               string
	}{
		{"PUT", "/config/ipam", ipamJSON, nil, 200, ""},
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

// TestAuditVocabulary makes every change the reference audits, over the
// API, and reads the log: the reference's categories, instances and
// actions (and details, but where ours say more: a registration's
// placements, the disk paths whose keys were deleted, the id of a deleted
// asset), plus what only we log: state changes and kernel parameters.
// docs/sabakan-api.md lists them.
func TestAuditVocabulary(t *testing.T) {
	d := startDaemon(t)
	sha := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	image := imageTar(t)
	text := []string{"Content-Type", "text/plain"}
	for _, s := range []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"PUT", "/config/ipam", ipamJSON, nil, 200},
		{"PUT", "/config/dhcp", `{"lease-minutes":30}`, nil, 200},
		{"POST", "/machines", `[{"serial":"qemu1","rack":0,"role":"worker","bmc":{"type":"IPMI-2.0"}}]`, nil, 201},
		{"PUT", "/labels/qemu1/os", "1855.4.0", nil, 200},
		{"DELETE", "/labels/qemu1/os", "", nil, 200},
		{"PUT", "/retire-date/qemu1", "2031-03-31T00:00:00Z", nil, 200},
		{"PUT", "/state/qemu1", "healthy", nil, 200},
		{"PUT", "tls:/crypts/qemu1/disk0", "key", nil, 201},
		{"PUT", "/state/qemu1", "retiring", nil, 200},
		{"DELETE", "tls:/crypts/qemu1", "", nil, 200},
		{"PUT", "/state/qemu1", "retired", nil, 200},
		{"DELETE", "/machines/qemu1", "", nil, 200},
		{"PUT", "/images/coreos/1.0", image, []string{"Content-Type", "application/tar"}, 201},
		{"DELETE", "/images/coreos/1.0", "", nil, 200},
		{"PUT", "/assets/hello", "hi", text, 201},
		{"PUT", "/assets/hello", "hello", text, 200},
		{"DELETE", "/assets/hello", "", nil, 200},
		{"PUT", "/kernel_params/coreos", "console=ttyS0", nil, 200},
		{"PUT", "/ignitions/worker/1.0.0", `{"version":"3.4","template":{}}`, nil, 201},
		{"DELETE", "/ignitions/worker/1.0.0", "", nil, 200},
	} {
		if status, body := d.call(s.method, s.path, s.body, s.hdr...); status != s.status {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, status, body, s.status)
		}
	}
	want := []string{ // category|instance|action|detail (a prefix of it)
		"ipam|config|put|{",
		"dhcp|config|put|{",
		`machines||register|[{"serial":"qemu1","rack":0,"index-in-rack":4,"role":"worker"}]`,
		"machines|qemu1|put-label|os/1855.4.0",
		"machines|qemu1|delete-label|os",
		"machines|qemu1|set-retire-date|2031-03-31 00:00:00 +0000 UTC",
		"machines|qemu1|set-state|uninitialized -> healthy",
		"crypts|qemu1|put|disk0",
		"machines|qemu1|set-state|healthy -> retiring",
		"crypts|qemu1|delete|disk0",
		"machines|qemu1|set-state|retiring -> retired",
		"machines|qemu1|delete|",
		"image|coreos|upload|id=1.0",
		"image|coreos|delete|id=1.0",
		"assets|hello|put|new checksum: " + sha("hi"),
		"assets|hello|put|new checksum: " + sha("hello"),
		"assets|hello|delete|2",
		"ipxe|coreos|put-kernel-params|console=ttyS0",
		"ignition|worker|put|1.0.0",
		"ignition|worker|delete|1.0.0",
	}
	_, logs := d.call("GET", "/logs", "")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var e sabakan.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if e.User != "tester" {
			t.Errorf("entry without its user: %s", line)
		}
		got = append(got, strings.Join([]string{string(e.Category), e.Instance, e.Action, e.Detail}, "|"))
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) || (!strings.HasSuffix(want[i], "{") && got[i] != want[i]) {
			t.Errorf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// imageTar is an OS image: a tar of kernel and initrd.gz.
func imageTar(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"kernel", "initrd.gz"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
