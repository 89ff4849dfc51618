package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cybozu-go/log"
	"github.com/cybozu-go/well"

	"github.com/openneco/neco/pkg/pki"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := log.NewLogger()
	logger.SetOutput(&buf)
	logger.SetFormatter(log.JSONFormat{})
	logger.SetThreshold(log.LvInfo)

	l := slog.New(NewLogHandler(logger)).With("component", "test", "message", "x").WithGroup("req")
	l.Debug("hidden")
	l.Info("served", "status", 200, "elapsed", 1500*time.Millisecond, "error", errors.New("boom"), "msg", "reserved")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1 (debug must be filtered): %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"message": "served", "component": "test", "req_status": 200.0,
		"req_elapsed": 1.5, "req_error": "boom", "req_msg": "reserved", "x_message": "x",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
}

func TestHealthHandler(t *testing.T) {
	var failing error
	h := HealthHandler(func(context.Context) error { return failing })
	for _, tt := range []struct {
		name   string
		err    error
		status int
		health string
	}{
		{"healthy", nil, http.StatusOK, "healthy"},
		{"unhealthy", errors.New("etcd unreachable"), http.StatusInternalServerError, "unhealthy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			failing = tt.err
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			var body map[string]string
			json.NewDecoder(rec.Body).Decode(&body)
			if rec.Code != tt.status || body["health"] != tt.health {
				t.Errorf("got %d %v, want %d %s", rec.Code, body, tt.status, tt.health)
			}
		})
	}
}

func TestRunDrainsServers(t *testing.T) {
	env := well.NewEnvironment(context.Background())
	served := make(chan string, 1)
	err := run(env, func(ctx context.Context) error {
		addr, err := Server{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ok"))
		})}.Start(env)
		if err != nil {
			return err
		}
		resp, err := http.Get("http://" + addr.String())
		if err != nil {
			return err
		}
		resp.Body.Close()
		served <- addr.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := <-served
	// main returned, so the server must have been shut down.
	if _, err := http.Get("http://" + addr); err == nil {
		t.Error("server still answers after main returned")
	}
}

func TestRunReturnsMainError(t *testing.T) {
	boom := errors.New("boom")
	err := run(well.NewEnvironment(context.Background()), func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("run() = %v, want main's error", err)
	}
}

// TestServerHTTP2 checks that a TLS server whose configuration names no
// protocols serves the HTTP/2 it offers in ALPN (the listener offered h2
// while the http.Server was not set up for it: h2 clients were dropped).
func TestServerHTTP2(t *testing.T) {
	ca, err := pki.NewCA("daemon test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("localhost", []string{"127.0.0.1"}, pki.ServerAuth, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	env := well.NewEnvironment(context.Background())
	defer func() { env.Cancel(nil); env.Wait() }()
	addr, err := Server{Addr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Proto)) })}.Start(env)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("served %s, want HTTP/2.0", resp.Proto)
	}
}
