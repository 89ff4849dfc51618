package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// stopBound is how long an idle sabakan may take to exit on SIGTERM: it
// takes well under a second on a quiet machine (docs/benchmarks.md); the
// rest is slack for a loaded one. It was 5-10 s.
const stopBound = 3 * time.Second

// TestStopIdle: an idle sabakan, janitor elected, exits promptly on SIGTERM.
func TestStopIdle(t *testing.T) {
	e := startEtcd(t)
	s := startSabakan(t, e, "idle")
	s.mustDo(t, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)
	s.mustDo(t, "POST", "/api/v1/machines", machines("m-", 10, 0, 10), 201)
	// Idle keep-alive connections, HTTP/1.1 and HTTP/2 over TLS, must not
	// hold the stop either.
	s.mustDo(t, "GET", "/api/v1/machines", nil, 200)
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	resp, err := tlsClient.Get("https://" + s.https + "/health")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("GET /health over HTTPS: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	waitJanitor(t, e)

	took := s.stop(t)
	if n := janitorCandidates(t, e); n != 0 {
		t.Errorf("the stopped server left %d key(s) in the janitor election: it did not resign", n)
	}
	t.Logf("idle sabakan exited %s after SIGTERM", took.Round(time.Millisecond))
	if took > stopBound {
		t.Errorf("an idle sabakan took %s to exit on SIGTERM, want at most %s", took.Round(time.Millisecond), stopBound)
	}
}

// TestStopDrainsInFlight: an upload in progress when SIGTERM comes completes
// with success, new connections are refused meanwhile, and the process exits
// once it is done.
func TestStopDrainsInFlight(t *testing.T) {
	e := startEtcd(t)
	s := startSabakan(t, e, "busy")

	// 4 KiB every 100 ms, 2 s in all; SIGTERM half a second in.
	const chunks, chunk = 20, 4 << 10
	pr, pw := io.Pipe()
	sent := make(chan struct{})
	go func() {
		for i := range chunks {
			pw.Write(bytes.Repeat([]byte("x"), chunk))
			if i == 4 {
				close(sent)
			}
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("PUT", s.url("/api/v1/assets/inflight"), pr)
		req.ContentLength = chunks * chunk
		req.Header.Set("Content-Type", "a/b")
		resp, err := httpClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{status: resp.StatusCode, body: string(data)}
	}()
	<-sent

	stopped := make(chan time.Duration, 1)
	go func() { stopped <- s.stop(t) }()
	// The listener stops accepting: a new request is refused (or, if it
	// raced the stop, answered) while the upload continues.
	deadline := time.Now().Add(stopBound)
	for {
		if _, err := (&http.Client{Timeout: time.Second}).Get(s.url("/health")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the HTTP listener still accepts requests after SIGTERM")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	a := <-answered
	if a.err != nil || a.status != 201 {
		t.Fatalf("the upload in flight at SIGTERM: %d %q %v, want 201", a.status, a.body, a.err)
	}
	took := <-stopped
	t.Logf("sabakan exited %s after SIGTERM, once the upload in flight was done", took.Round(time.Millisecond))
	if took > 2*time.Second+stopBound {
		t.Errorf("sabakan took %s to exit after an upload of 2 s", took.Round(time.Millisecond))
	}
}

// stop sends SIGTERM and returns how long the process took to exit; it
// fails the test when the exit is not a clean one.
func (s *sabakanProc) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("sabakan %s did not exit within 30 s of SIGTERM", s.name)
		s.cmd.Process.Kill()
		<-s.done
	}
	took := time.Since(start)
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("sabakan %s exited with %d after SIGTERM, want 0", s.name, code)
	}
	return took
}

// waitJanitor waits until a server leads the janitor election, so that
// stopping it resigns a real election.
func waitJanitor(t *testing.T, e *etcdProc) {
	t.Helper()
	c := e.rawClient()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(context.Background(), "/sabakan/janitor/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no janitor elected: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// janitorCandidates counts the keys of the janitor election.
func janitorCandidates(t *testing.T, e *etcdProc) int64 {
	t.Helper()
	c := e.rawClient()
	defer c.Close()
	resp, err := c.Get(context.Background(), "/sabakan/janitor/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}
