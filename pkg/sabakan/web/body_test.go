package web

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyIdleTimeout: a body that pauses longer than BodyIdleTimeout fails
// with 408 and the connection is closed; a slow body that keeps coming, and
// a handler slower than the timeout once it has the body, are not cut. The
// server here is a plain http.Server without ConnState, so the deadlines go
// through http.ResponseController (sabakan's listeners use ConnState, see
// the server package's TestStalledBody).
func TestBodyIdleTimeout(t *testing.T) {
	// The steady body below pauses a tenth of idle between writes: a
	// margin that a loaded CI machine (load 50-100 on 2 cores) keeps.
	const idle = 2 * time.Second
	srv := New(Config{BodyIdleTimeout: idle})
	srv.Handle("PUT", "/slow", func(w http.ResponseWriter, r *http.Request) error {
		data, err := ReadBody(r, 1<<20)
		if err != nil {
			return err
		}
		time.Sleep(idle + idle/2) // work after the body: no deadline applies
		if err := r.Context().Err(); err != nil {
			t.Errorf("the request's context ended while the handler worked: %v", err)
		}
		w.Write([]byte(itoa(len(data))))
		return nil
	})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	start := time.Now()
	conn.SetReadDeadline(start.Add(idle + 5*time.Second))
	answer, err := io.ReadAll(conn)
	if err != nil || time.Since(start) > idle+2*time.Second || !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) {
		t.Errorf("a stalled body: %q after %s (%v), want 408 and the connection closed after %s", answer, time.Since(start), err, idle)
	}
	if !strings.Contains(string(answer), "no byte of the body came for 2s (after 10 bytes)") {
		t.Errorf("the 408's message: %q", answer)
	}

	pr, pw := io.Pipe()
	go func() {
		for range 15 { // 3 s in all: longer than idle, never idle for long
			pw.Write([]byte("0123456789"))
			time.Sleep(idle / 10)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", ts.URL+"/slow", pr)
	req.ContentLength = 150
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(data) != "150" {
		t.Errorf("a slow but steady body: %d %s", resp.StatusCode, data)
	}
}
