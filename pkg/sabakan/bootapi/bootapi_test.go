package bootapi_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/web"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// machines is an in-memory inventory.
type machines map[string]*sabakan.Machine

func (ms machines) Machine(_ context.Context, serial string) (*sabakan.Machine, error) {
	if m, ok := ms[serial]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("%w: machine %s", sabakan.ErrNotFound, serial)
}

// server is one boot server: an HTTP server with its own data directory.
type server struct {
	url     string
	content *content.Store
	api     *bootapi.API
}

func newServer(t *testing.T, client *clientv3.Client, inv machines) *server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	st, err := content.New(client, content.Options{Dir: t.TempDir(), AdvertiseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	efi := filepath.Join(t.TempDir(), "ipxe.efi")
	os.WriteFile(efi, []byte("MZ fake efi"), 0o644)
	api := &bootapi.API{
		Content: st, Ignitions: ignition.NewStore(client, nil), Machines: inv,
		URLs: ignition.URLs{HTTP: url, HTTPS: "https://x"}, IPXEEFI: efi,
	}
	srv := web.New(web.Config{Hostname: "boot", Version: "test"})
	srv.RegisterBoot(api)
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return &server{url: ts.URL, content: st, api: api}
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string, length int64) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if length != 0 {
		req.ContentLength = length
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestAssets(t *testing.T) {
	client := etcdtest.Client(t)
	a, b := newServer(t, client, nil), newServer(t, client, nil)
	data := bytes.Repeat([]byte("sabakan"), 100000)
	hdr := map[string]string{"Content-Type": "application/octet-stream", "X-Sabakan-Asset-SHA256": sum(data), "X-Sabakan-Asset-Options-Mode": "0755"}

	r := do(t, "PUT", a.url+"/api/v1/assets/agent", bytes.NewReader(data), hdr, 0)
	if r.status != 201 || !strings.Contains(r.body, `"id":"`) {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	r = do(t, "GET", a.url+"/api/v1/assets/agent", nil, nil, 0)
	if r.status != 200 || r.body != string(data) || r.header.Get("X-Sabakan-Asset-SHA256") != sum(data) || r.header.Get("X-Sabakan-Asset-ID") == "" {
		t.Fatalf("GET: %d, %d bytes, headers %v", r.status, len(r.body), r.header)
	}
	// B has no copy yet: it redirects to A.
	r = do(t, "GET", b.url+"/api/v1/assets/agent", nil, nil, 0)
	if r.status != 302 || r.header.Get("Location") != a.url+"/api/v1/assets/agent" {
		t.Fatalf("GET from B before replication: %d %s", r.status, r.header.Get("Location"))
	}
	if err := b.content.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = do(t, "GET", b.url+"/api/v1/assets/agent/meta", nil, nil, 0)
	var meta content.Asset
	json.Unmarshal([]byte(r.body), &meta)
	if !meta.Exists || len(meta.URLs) != 2 || meta.Options["mode"] != "0755" || meta.Size != int64(len(data)) {
		t.Fatalf("meta after replication: %s", r.body)
	}
	if r := do(t, "HEAD", b.url+"/api/v1/assets/agent", nil, nil, 0); r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(data)) {
		t.Fatalf("HEAD from B: %d %v", r.status, r.header)
	}

	// Replacing answers 200 and both servers drop the old file.
	oldID := meta.ID
	r = do(t, "PUT", a.url+"/api/v1/assets/agent", strings.NewReader("v2"), map[string]string{"Content-Type": "text/plain"}, 0)
	if r.status != 200 {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	for _, s := range []*server{a, b} {
		s.content.Reconcile(context.Background())
		if _, err := os.Stat(filepath.Join(s.content.Dir(), "assets", fmt.Sprint(oldID))); !os.IsNotExist(err) {
			t.Errorf("%s kept the replaced file: %v", s.url, err)
		}
	}
	if r := do(t, "GET", b.url+"/api/v1/assets/agent", nil, nil, 0); r.body != "v2" {
		t.Errorf("B serves %q after replacement", r.body)
	}

	// Bad input.
	for _, tt := range []struct {
		name   string
		url    string
		body   io.Reader
		hdr    map[string]string
		length int64
		status int
	}{
		{"sha mismatch", "/api/v1/assets/x", strings.NewReader("abc"), map[string]string{"Content-Type": "a/b", "X-Sabakan-Asset-SHA256": sum([]byte("abd"))}, 0, 400},
		{"bad sha", "/api/v1/assets/x", strings.NewReader("abc"), map[string]string{"Content-Type": "a/b", "X-Sabakan-Asset-SHA256": "zz"}, 0, 400},
		{"no content type", "/api/v1/assets/x", strings.NewReader("abc"), nil, 0, 400},
		{"no length", "/api/v1/assets/x", io.MultiReader(strings.NewReader("abc")), map[string]string{"Content-Type": "a/b"}, -1, 411},
		{"dot name", "/api/v1/assets/.hidden", strings.NewReader("abc"), map[string]string{"Content-Type": "a/b"}, 0, 400},
		{"dotdot", "/api/v1/assets/..%2f..%2fetc", strings.NewReader("abc"), map[string]string{"Content-Type": "a/b"}, 0, 400},
		{"encoded slash", "/api/v1/assets/a%2Fb", strings.NewReader("abc"), map[string]string{"Content-Type": "a/b"}, 0, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "PUT", a.url+tt.url, tt.body, tt.hdr, tt.length)
			if r.status != tt.status || !strings.Contains(r.body, `"error"`) {
				t.Errorf("got %d %s, want %d with an error", r.status, r.body, tt.status)
			}
		})
	}
	// Over 4 GiB: refused from the header alone (a raw request, since a
	// client will not send a short body).
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /api/v1/assets/x HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Length: %d\r\n\r\nabc", int64(content.MaxAssetSize)+1)
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.Contains(status, " 413 ") {
		t.Errorf("over 4 GiB: %q, want 413", status)
	}
	if names := do(t, "GET", a.url+"/api/v1/assets", nil, nil, 0); names.body != "[\"agent\"]\n" {
		t.Errorf("failed uploads left something: %s", names.body)
	}
	if ents, _ := os.ReadDir(filepath.Join(a.content.Dir(), "tmp")); len(ents) != 0 {
		t.Errorf("temp files left: %v", ents)
	}

	// Delete propagates.
	if r := do(t, "DELETE", a.url+"/api/v1/assets/agent", nil, nil, 0); r.status != 200 {
		t.Fatalf("DELETE: %d", r.status)
	}
	b.content.Reconcile(context.Background())
	if ents, _ := os.ReadDir(filepath.Join(b.content.Dir(), "assets")); len(ents) != 0 {
		t.Errorf("B kept files of a deleted asset: %v", ents)
	}
	if r := do(t, "GET", a.url+"/api/v1/assets/agent", nil, nil, 0); r.status != 404 {
		t.Errorf("GET deleted: %d", r.status)
	}
}

func imageTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

func TestImagesAndBoot(t *testing.T) {
	client := etcdtest.Client(t)
	m := sabakan.NewMachine(sabakan.MachineSpec{Serial: "s1", Role: "worker", Rack: 1, IndexInRack: 5}, time.Now())
	inv := machines{"s1": m}
	a, b := newServer(t, client, inv), newServer(t, client, inv)

	for _, tt := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"not a tar", []byte("garbage garbage garbage"), 400},
		{"truncated", imageTar(t, map[string]string{"kernel": "K", "initrd.gz": "I"})[:600], 400},
		{"missing initrd", imageTar(t, map[string]string{"kernel": "K"}), 400},
		{"extra file", imageTar(t, map[string]string{"kernel": "K", "initrd.gz": "I", "../evil": "x"}), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, "PUT", a.url+"/api/v1/images/coreos/1", bytes.NewReader(tt.body), nil, 0); r.status != tt.status {
				t.Errorf("got %d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
	for i := 1; i <= 6; i++ {
		body := imageTar(t, map[string]string{"kernel": fmt.Sprintf("kernel-%d", i), "initrd.gz": fmt.Sprintf("initrd-%d", i)})
		if r := do(t, "PUT", a.url+fmt.Sprintf("/api/v1/images/coreos/%d.0", i), bytes.NewReader(body), nil, 0); r.status != 201 {
			t.Fatalf("PUT image %d: %d %s", i, r.status, r.body)
		}
	}
	var index []content.Image
	json.Unmarshal([]byte(do(t, "GET", a.url+"/api/v1/images/coreos", nil, nil, 0).body), &index)
	if len(index) != 5 || index[0].ID != "2.0" || !index[4].Exists {
		t.Fatalf("index: %+v", index)
	}
	if r := do(t, "PUT", a.url+"/api/v1/images/coreos/1.0", bytes.NewReader(imageTar(t, map[string]string{"kernel": "k", "initrd.gz": "i"})), nil, 0); r.status != 409 {
		t.Errorf("re-upload of a dropped id: %d", r.status)
	}
	if r := do(t, "PUT", a.url+"/api/v1/images/coreos/6.0", bytes.NewReader(imageTar(t, map[string]string{"kernel": "k", "initrd.gz": "i"})), nil, 0); r.status != 409 {
		t.Errorf("re-upload of an existing id: %d", r.status)
	}
	a.content.Reconcile(context.Background())
	if _, err := os.Stat(filepath.Join(a.content.Dir(), "images/coreos/1.0")); !os.IsNotExist(err) {
		t.Errorf("image 1.0 kept on disk after leaving the index")
	}
	// B catches up and serves the newest kernel.
	if err := b.content.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := do(t, "GET", b.url+"/api/v1/boot/coreos/kernel", nil, nil, 0)
	if r.status != 200 || r.body != "kernel-6" {
		t.Fatalf("B kernel: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", b.url+"/api/v1/boot/coreos/initrd.gz", nil, nil, 0); r.body != "initrd-6" {
		t.Errorf("B initrd %q", r.body)
	}
	json.Unmarshal([]byte(do(t, "GET", b.url+"/api/v1/images/coreos", nil, nil, 0).body), &index)
	if len(index[4].URLs) != 2 {
		t.Errorf("B did not advertise its copy: %v", index[4].URLs)
	}
	// Deleting the newest makes both fall back to the previous one.
	do(t, "DELETE", a.url+"/api/v1/images/coreos/6.0", nil, nil, 0)
	b.content.Reconcile(context.Background())
	if r := do(t, "GET", b.url+"/api/v1/boot/coreos/kernel", nil, nil, 0); r.body != "kernel-5" {
		t.Errorf("after delete B serves %q", r.body)
	}
	if r := do(t, "DELETE", a.url+"/api/v1/images/coreos/6.0", nil, nil, 0); r.status != 404 {
		t.Errorf("second delete: %d", r.status)
	}

	// Kernel parameters.
	if r := do(t, "PUT", a.url+"/api/v1/kernel_params/coreos", strings.NewReader("console=ttyS0\x01"), nil, 0); r.status != 400 {
		t.Errorf("control character accepted: %d", r.status)
	}
	if r := do(t, "PUT", a.url+"/api/v1/kernel_params/coreos", strings.NewReader(" console=ttyS0 quiet\n"), nil, 0); r.status != 200 {
		t.Fatalf("kernel params: %d %s", r.status, r.body)
	}

	// Ignition templates and the boot flow of machine s1.
	bad := `{"version":"3.4","template":{"storage":{"files":[{"path":"relative"}]}}}`
	if r := do(t, "PUT", a.url+"/api/v1/ignitions/worker/1", strings.NewReader(bad), nil, 0); r.status != 400 || !strings.Contains(r.body, "absolute") {
		t.Errorf("invalid template: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", a.url+"/api/v1/ignitions/worker/1", strings.NewReader(`{"version":"3.4","template":{"a":"{{ .Nope }}"}}`), nil, 0); r.status != 400 || !strings.Contains(r.body, "Nope") {
		t.Errorf("unrenderable template: %d %s", r.status, r.body)
	}
	good := `{"version":"3.4","template":{"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,{{ .Spec.Serial }}"}}]}},"meta":{"v":"1"}}`
	if r := do(t, "PUT", a.url+"/api/v1/ignitions/worker/1.0", strings.NewReader(good), nil, 0); r.status != 201 {
		t.Fatalf("PUT template: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", a.url+"/api/v1/ignitions/worker/1.0", strings.NewReader(good), nil, 0); r.status != 409 {
		t.Errorf("overwrite: %d", r.status)
	}
	if r := do(t, "GET", b.url+"/api/v1/ignitions/worker", nil, nil, 0); r.body != "[\"1.0\"]\n" {
		t.Errorf("ids: %s", r.body)
	}
	r = do(t, "GET", b.url+"/api/v1/boot/coreos/ipxe", nil, nil, 0)
	if !strings.Contains(r.body, "chain "+b.url+"/api/v1/boot/coreos/ipxe/${serial}") {
		t.Errorf("chain script: %s", r.body)
	}
	r = do(t, "GET", b.url+"/api/v1/boot/coreos/ipxe/s1", nil, nil, 0)
	wantScript := bootapi.IPXEScript(b.url, "s1", "1.0", "console=ttyS0 quiet")
	if r.status != 200 || r.body != wantScript {
		t.Errorf("iPXE script:\n%s\nwant\n%s", r.body, wantScript)
	}
	if r := do(t, "GET", b.url+"/api/v1/boot/coreos/ipxe/nobody", nil, nil, 0); r.status != 404 {
		t.Errorf("unknown machine: %d", r.status)
	}
	r = do(t, "GET", b.url+"/api/v1/boot/ignitions/s1/1.0", nil, nil, 0)
	if r.status != 200 || !strings.Contains(r.body, `"source":"data:,s1"`) || !strings.Contains(r.body, `"version":"3.4.0"`) {
		t.Errorf("rendered ignition: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", b.url+"/api/v1/boot/ignitions/s1/9.9", nil, nil, 0); r.status != 404 {
		t.Errorf("unknown template id: %d", r.status)
	}
	if r := do(t, "GET", b.url+"/api/v1/boot/ipxe.efi", nil, nil, 0); r.status != 200 || r.body != "MZ fake efi" {
		t.Errorf("ipxe.efi: %d %q", r.status, r.body)
	}
}

// TestIgnitionIDs: the reference's answers for template ids. A role
// without templates lists as null (200); an invalid role is 400; a new
// template's id must be a version (400 otherwise); the listing and the
// template a machine boots follow one order, versions compared as such.
func TestIgnitionIDs(t *testing.T) {
	client := etcdtest.Client(t)
	m := sabakan.NewMachine(sabakan.MachineSpec{Serial: "s1", Role: "worker", Rack: 1, IndexInRack: 5}, time.Now())
	a := newServer(t, client, machines{"s1": m})
	good := `{"version":"3.4","template":{"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,{{ .Spec.Serial }}"}}]}}}`
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		want                     string // the body, or a part of an error's
	}{
		{"role without templates", "GET", "/api/v1/ignitions/worker", "", 200, "null\n"},
		{"invalid role", "GET", "/api/v1/ignitions/-bad-", "", 400, "invalid role"},
		{"boot without templates", "GET", "/api/v1/boot/coreos/ipxe/s1", "", 404, "no ignition templates"},
		{"id not a version", "PUT", "/api/v1/ignitions/worker/notsemver", good, 400, `invalid ignition id \"notsemver\": want a version`},
		{"id with a bad character", "PUT", "/api/v1/ignitions/worker/1.0_1", good, 400, "want a version"},
		{"id over 128 characters", "PUT", "/api/v1/ignitions/worker/" + strings.Repeat("1.", 64) + "1", good, 400, "at most 128"},
		{"nothing stored", "GET", "/api/v1/ignitions/worker", "", 200, "null\n"},
		{"put 1.9.0", "PUT", "/api/v1/ignitions/worker/1.9.0", good, 201, ""},
		{"put 1.10.0", "PUT", "/api/v1/ignitions/worker/1.10.0", good, 201, ""},
		{"put 1.10.0-rc.1", "PUT", "/api/v1/ignitions/worker/1.10.0-rc.1", good, 201, ""},
		{"put v1.2", "PUT", "/api/v1/ignitions/worker/v1.2", good, 201, ""},
		{"listing", "GET", "/api/v1/ignitions/worker", "", 200, `["v1.2","1.9.0","1.10.0-rc.1","1.10.0"]` + "\n"},
		{"boots the newest", "GET", "/api/v1/boot/coreos/ipxe/s1", "", 200, "/api/v1/boot/ignitions/s1/1.10.0\n"},
		{"get a missing version", "GET", "/api/v1/ignitions/worker/2.0", "", 404, "worker/2.0"},
		{"delete the newest", "DELETE", "/api/v1/ignitions/worker/1.10.0", "", 200, ""},
		{"boots the next newest", "GET", "/api/v1/boot/coreos/ipxe/s1", "", 200, "/api/v1/boot/ignitions/s1/1.10.0-rc.1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, a.url+tt.path, strings.NewReader(tt.body), nil, 0)
			ok := strings.Contains(r.body, tt.want)
			if tt.status == 200 && tt.method == "GET" && strings.HasPrefix(tt.path, "/api/v1/ignitions/") {
				ok = r.body == tt.want
			}
			if r.status != tt.status || !ok {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, r.status, r.body, tt.status, tt.want)
			}
		})
	}
}

// TestReplicationLoop runs the replicators: a server that was down catches
// up when it starts, later uploads reach it through the watch, and a
// deletion made while it is down is applied when it comes back.
func TestReplicationLoop(t *testing.T) {
	client := etcdtest.Client(t)
	a, b := newServer(t, client, nil), newServer(t, client, nil)
	hdr := map[string]string{"Content-Type": "application/octet-stream"}
	do(t, "PUT", a.url+"/api/v1/assets/early", strings.NewReader("before b started"), hdr, 0)

	run := func(s *server) context.CancelFunc {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.content.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	local := func(s *server, name string) bool {
		meta, err := s.content.GetAsset(context.Background(), name)
		return err == nil && meta.Exists
	}
	stopB := run(b)
	waitFor("B to catch up", func() bool { return local(b, "early") })
	do(t, "PUT", a.url+"/api/v1/assets/later", strings.NewReader("after"), hdr, 0)
	waitFor("B to pull through the watch", func() bool { return local(b, "later") })

	stopB()
	do(t, "DELETE", a.url+"/api/v1/assets/early", nil, nil, 0)
	stopB = run(b)
	defer stopB()
	waitFor("B to drop the deleted asset", func() bool {
		ents, _ := os.ReadDir(filepath.Join(b.content.Dir(), "assets"))
		return len(ents) == 1
	})
}
