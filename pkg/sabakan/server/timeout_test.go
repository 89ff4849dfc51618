package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStalledBody: a client that sends the headers and part of a body, then
// nothing, is answered 408 and disconnected once the body has paused for
// body-idle-timeout, while an upload that is slow but keeps sending — longer
// in all than the timeout — succeeds.
func TestStalledBody(t *testing.T) {
	const idle = time.Second
	e := startEtcd(t)
	s := startSabakan(t, e, "s", "-body-idle-timeout", idle.String())

	conn, err := net.Dial("tcp", s.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /api/v1/assets/stalled HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Length: 1000\r\n\r\n0123456789")
	start := time.Now()
	conn.SetReadDeadline(start.Add(idle + 10*time.Second))
	answer, err := io.ReadAll(conn) // until the server closes the connection
	took := time.Since(start)
	if err != nil {
		t.Fatalf("the server kept a stalled upload's connection open for %s: %v", took.Round(time.Millisecond), err)
	}
	if took > idle+3*time.Second {
		t.Errorf("the server closed a stalled upload's connection after %s, want about %s", took.Round(time.Millisecond), idle)
	}
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408 ") {
		t.Errorf("a stalled upload was answered %q, want 408", answer)
	}
	t.Logf("stalled upload: %q after %s", firstLine(answer), took.Round(time.Millisecond))

	// Slow but steady: 4 KiB every idle/3, about 4 timeouts in all.
	const chunks, chunk = 12, 4 << 10
	pr, pw := io.Pipe()
	go func() {
		for range chunks {
			pw.Write(bytes.Repeat([]byte("x"), chunk))
			time.Sleep(idle / 3)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", s.url("/api/v1/assets/slow"), pr)
	req.ContentLength = chunks * chunk
	req.Header.Set("Content-Type", "a/b")
	start = time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("a slow but steady upload of %s: %d %s", time.Since(start).Round(time.Millisecond), resp.StatusCode, data)
	}
	if st, data := s.get("/api/v1/assets/slow/meta"); st != 200 || !strings.Contains(string(data), fmt.Sprintf(`"size":%d`, chunks*chunk)) {
		t.Errorf("the slow upload's asset: %d %s", st, data)
	}
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}
