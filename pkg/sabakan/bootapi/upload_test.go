package bootapi_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

// rawUpload sends a request whose Content-Length promises more than the
// body it sends, closes its write side (as a client that gave up does) and
// returns the status line and body of the answer.
func rawUpload(t *testing.T, url, method, path string, header map[string]string, length int, body string) (string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req strings.Builder
	req.WriteString(method + " " + path + " HTTP/1.1\r\nHost: x\r\n")
	for k, v := range header {
		req.WriteString(k + ": " + v + "\r\n")
	}
	req.WriteString("Content-Length: " + strconv.Itoa(length) + "\r\n\r\n" + body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	data, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	status, rest, _ := strings.Cut(string(data), "\r\n")
	_, answer, _ := strings.Cut(rest, "\r\n\r\n")
	return status, answer
}

// TestShortUploads: an upload whose body ends before its Content-Length
// (the client lied, or gave up) is the client's fault: 400 with a message
// saying so, and nothing of it stays — no asset or image in etcd, no file
// in the data directory.
func TestShortUploads(t *testing.T) {
	client := etcdtest.Client(t)
	a := newServer(t, client, nil)
	for _, tt := range []struct {
		name, path string
		header     map[string]string
	}{
		{"asset", "/api/v1/assets/lie", map[string]string{"Content-Type": "application/octet-stream"}},
		{"image", "/api/v1/images/coreos/lie", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawUpload(t, a.url, "PUT", tt.path, tt.header, 1000, "0123456789")
			if !strings.Contains(status, " 400 ") || !strings.Contains(body, `"error"`) {
				t.Errorf("a body of 10 of 1000 bytes: %s %s, want 400 with an error", status, body)
			}
		})
	}
	if status, body := rawUpload(t, a.url, "PUT", "/api/v1/assets/lie", map[string]string{"Content-Type": "a/b"}, 1000, "0123456789"); !strings.Contains(body, "10 of 1000 bytes") {
		t.Errorf("the message does not say how much of the body came: %s %s", status, body)
	}
	if r := do(t, "GET", a.url+"/api/v1/assets/lie", nil, nil, 0); r.status != http.StatusNotFound {
		t.Errorf("GET the asset of a short upload: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", a.url+"/api/v1/images/coreos", nil, nil, 0); r.body != "[]\n" {
		t.Errorf("image index after a short upload: %s", r.body)
	}
	for _, dir := range []string{"tmp", "assets", "images/coreos"} {
		if ents, _ := os.ReadDir(filepath.Join(a.content.Dir(), dir)); len(ents) != 0 {
			t.Errorf("a short upload left files in %s: %v", dir, ents)
		}
	}
}
