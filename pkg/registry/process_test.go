package registry_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/openneco/neco/pkg/testutil"
)

// proc is cmd/neco-registry run as a process.
type proc struct {
	cmd                    *exec.Cmd
	public, write, metrics string
	log                    *bytes.Buffer
	exited                 chan struct{}
}

func startProc(t *testing.T, ca testCA, storage string) *proc {
	t.Helper()
	p := &proc{public: freeAddr(t), write: freeAddr(t), metrics: freeAddr(t), log: &bytes.Buffer{}}
	p.cmd = exec.Command(registryBinary(t), "-public", p.public, "-write", p.write, "-metrics", p.metrics,
		"-storage-dir", storage, "-tls-cert-file", ca.Cert, "-tls-key-file", ca.Key)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	testutil.DieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("neco-registry output:\n%s", p.log)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.metrics + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("neco-registry exited: %v\n%s", p.cmd.ProcessState, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("neco-registry not healthy after 60 s: %v\n%s", err, p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ackRecorder records the digests of blob uploads the registry answered
// 201, i.e. acknowledged.
type ackRecorder struct {
	http.RoundTripper
	mu     sync.Mutex
	acked  []string
	notify chan struct{}
}

func (a *ackRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.RoundTripper.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && strings.Contains(r.URL.Path, "/blobs/uploads/") {
		a.mu.Lock()
		a.acked = append(a.acked, r.URL.Query().Get("digest"))
		a.mu.Unlock()
		select {
		case a.notify <- struct{}{}:
		default:
		}
	}
	return resp, err
}

func (a *ackRecorder) digests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.acked...)
}

// TestKilledMidPush kills neco-registry with SIGKILL in the middle of a
// push of many blobs: after a restart on the same storage every blob it
// had acknowledged (201) is there with the right content, and the push,
// done again, completes and pulls back verified over TLS.
func TestKilledMidPush(t *testing.T) {
	ca := newTestCA(t)
	storage := filepath.Join(t.TempDir(), "storage")
	p := startProc(t, ca, storage)
	img, err := random.Image(256<<10, 24)
	if err != nil {
		t.Fatal(err)
	}
	rec := &ackRecorder{RoundTripper: http.DefaultTransport.(*http.Transport).Clone(), notify: make(chan struct{}, 1)}
	pushed := make(chan error, 1)
	go func() { pushed <- push(t, p.write, "neco/killed", "v1", img, rec) }()
	for len(rec.digests()) < 6 {
		select {
		case <-rec.notify:
		case err := <-pushed:
			t.Fatalf("the push ended before the kill: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("no 6 blobs acknowledged within 60 s")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pushed:
		if err == nil {
			t.Fatal("the push completed although the registry was killed")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the push did not fail within 60 s of the kill")
	}
	acked := rec.digests()
	layers, _ := img.Layers()
	if len(acked) >= len(layers)+1 {
		t.Fatalf("all %d blobs were acknowledged before the kill landed: nothing was in flight", len(acked))
	}
	t.Logf("%d of %d blobs acknowledged before the kill", len(acked), len(layers)+1)

	p = startProc(t, ca, storage)
	for _, d := range acked {
		resp, err := http.Get("http://" + p.write + "/v2/neco/killed/blobs/" + d)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err != nil || resp.StatusCode != 200 || got != d {
			t.Errorf("acknowledged blob %s after the restart: %d, content %s, %v", d, resp.StatusCode, got, err)
		}
	}
	if err := push(t, p.write, "neco/killed", "v1", img, nil); err != nil {
		t.Fatalf("the push again after the restart: %v", err)
	}
	s := &started{ca: ca}
	if s.Public, err = net.ResolveTCPAddr("tcp", p.public); err != nil {
		t.Fatal(err)
	}
	pullPublic(t, s, "neco/killed", "v1", img)

	// SIGTERM stops it cleanly, with exit status 0.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if st := p.cmd.ProcessState; st.ExitCode() != 0 {
			t.Errorf("after SIGTERM: %v", st)
		}
	case <-time.After(30 * time.Second):
		t.Error("still running 30 s after SIGTERM")
	}
}

// TestBinaryBadConfig runs the binary with configurations it must refuse:
// exit status 2 (bad flags or file) or 1 (files it cannot use) and a
// message naming the problem.
func TestBinaryBadConfig(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte("write: 0.0.0.0:5001\nstorage-dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.yml")
	if err := os.WriteFile(typo, []byte("stroage-dir: /tmp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"-public", "127.0.0.1:0", "-write", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-tls-cert-file", ca.Cert, "-tls-key-file", ca.Key}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"write not on loopback", append(base, "-write", "10.0.0.1:5001", "-storage-dir", dir), 2, "loopback"},
		{"write on every address", append(base, "-write", ":5001", "-storage-dir", dir), 2, "loopback"},
		{"write on every address from the file", []string{"-config-file", cfgFile}, 2, "loopback"},
		{"unknown key in the file", []string{"-config-file", typo}, 2, "stroage-dir"},
		{"missing certificate", append(base, "-storage-dir", dir, "-tls-cert-file", filepath.Join(dir, "none.crt")), 1, "none.crt"},
		{"storage is a file", append(base, "-storage-dir", notDir), 1, "storage-dir"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(registryBinary(t), tt.args...)
			testutil.DieWithTest(cmd)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) {
				t.Errorf("exit %d (%v), output %q; want exit %d and %q", code, err, out, tt.code, tt.want)
			}
		})
	}
}
