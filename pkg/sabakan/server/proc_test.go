package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/openneco/neco/pkg/testutil"
)

// This file runs real processes: an etcd server from PATH (make etcd puts
// the pinned one into bin/, and make test puts bin/ on PATH) and sabakan
// built from this tree.

// sabakanBinary builds cmd/sabakan once per test binary.
func sabakanBinary(t testing.TB) string {
	return testutil.GoBinary(t, "github.com/openneco/neco/cmd/sabakan")
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

// etcdProc is an etcd server process.
type etcdProc struct {
	t            testing.TB
	dir          string
	client, peer string
	cmd          *exec.Cmd
	log          *os.File
}

func startEtcd(t testing.TB) *etcdProc {
	t.Helper()
	testutil.RequireCommands(t, "etcd")
	e := &etcdProc{t: t, dir: t.TempDir(), client: freeAddr(t), peer: freeAddr(t)}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *etcdProc) endpoint() string { return "http://" + e.client }

func (e *etcdProc) start() {
	e.t.Helper()
	log, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.log = log
	e.cmd = exec.Command("etcd", "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.endpoint(), "--advertise-client-urls", e.endpoint(),
		"--listen-peer-urls", "http://"+e.peer, "--initial-advertise-peer-urls", "http://"+e.peer,
		"--initial-cluster", "test=http://"+e.peer, "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = log, log
	testutil.DieWithTest(e.cmd)
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	c := e.rawClient()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops etcd gracefully.
func (e *etcdProc) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	e.cmd.Wait()
	e.cmd = nil
	e.log.Close()
}

// rawClient is a client of the whole key space.
func (e *etcdProc) rawClient() *clientv3.Client {
	e.t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// sabakanProc is a sabakan server process.
type sabakanProc struct {
	t                    testing.TB
	name                 string
	http, https, metrics string
	cmd                  *exec.Cmd
	logPath              string
	done                 chan struct{}
}

func startSabakan(t testing.TB, e *etcdProc, name string, args ...string) *sabakanProc {
	t.Helper()
	dir := t.TempDir()
	s := &sabakanProc{t: t, name: name, http: freeAddr(t), https: freeAddr(t), metrics: freeAddr(t),
		logPath: filepath.Join(dir, "sabakan.log"), done: make(chan struct{})}
	base := []string{
		"-http", s.http, "-https", s.https, "-metrics", s.metrics,
		"-advertise-url", "http://" + s.http, "-advertise-url-https", "https://" + s.https,
		"-data-dir", filepath.Join(dir, "data"), "-server-cert", filepath.Join(dir, "server.crt"), "-server-key", filepath.Join(dir, "server.key"),
		"-etcd-endpoints", e.endpoint(), "-etcd-prefix", "/sabakan/",
		"-dhcp-bind", "127.0.0.1:0", "-logformat", "json",
	}
	log, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(sabakanBinary(t), append(base, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	testutil.DieWithTest(s.cmd)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		log.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		// SIGKILL: crash safety is what most of these tests are about
		// (shutdown_test.go tests the graceful stop).
		s.kill(syscall.SIGKILL)
		if t.Failed() {
			data, _ := os.ReadFile(s.logPath)
			t.Logf("log of sabakan %s:\n%s", name, tail(string(data), 3000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := s.get("/health"); st == 200 {
			return s
		}
		select {
		case <-s.done:
			data, _ := os.ReadFile(s.logPath)
			t.Fatalf("sabakan %s exited at start:\n%s", name, data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sabakan %s did not become healthy", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// kill sends sig and waits for the process to end.
func (s *sabakanProc) kill(sig syscall.Signal) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *sabakanProc) url(path string) string { return "http://" + s.http + path }

var httpClient = &http.Client{Timeout: 60 * time.Second}

func (s *sabakanProc) do(method, path string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, s.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("X-Sabakan-User", "integration")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (s *sabakanProc) get(path string) (int, []byte) { return s.do("GET", path, nil) }

// doURL gets an absolute URL (the metrics listener).
func (s *sabakanProc) doURL(u string) (int, []byte) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// mustDo fails the test unless the call answers want.
func (s *sabakanProc) mustDo(t testing.TB, method, path string, body []byte, want int) []byte {
	t.Helper()
	st, data := s.do(method, path, body)
	if st != want {
		t.Fatalf("%s %s on %s: %d %s, want %d", method, path, s.name, st, tail(string(data), 500), want)
	}
	return data
}

// count returns how many machines the server lists (0 on 404).
func (s *sabakanProc) count(t testing.TB, query string) int {
	t.Helper()
	st, data := s.get("/api/v1/machines" + query)
	if st == 404 {
		return 0
	}
	if st != 200 {
		t.Fatalf("GET machines on %s: %d %s", s.name, st, tail(string(data), 300))
	}
	var ms []json.RawMessage
	if err := json.Unmarshal(data, &ms); err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// testIPAM has racks of 100 machines.
const testIPAM = `{"max-nodes-in-rack":100,"node-ipv4-pool":"10.64.0.0/12","node-ipv4-range-size":7,"node-ipv4-range-mask":25,
"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.96.0.0/12","bmc-ipv4-range-size":7,
"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`

// machines returns a POST body of n machines from rack0 on, perRack each.
func machines(prefix string, n, rack0, perRack int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"serial":"%s%05d","rack":%d,"role":"%s","labels":{"product":"R640","dc":"tokyo"},"bmc":{"type":"IPMI-2.0"}}`,
			prefix, i, rack0+i/perRack, []string{"cs", "ss"}[i%2])
	}
	b.WriteString("]")
	return []byte(b.String())
}
