package kubeapi_test

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/pki"
)

func TestNew(t *testing.T) {
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue("user", nil, pki.ClientAuth, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  kubeapi.Config
		ok   bool
	}{
		{name: "ok", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443", "https://[fd00::1]:6443/"}, CACert: ca.CertPEM(), ClientCert: cert, ClientKey: key}, ok: true},
		{name: "system roots, no client certificate", cfg: kubeapi.Config{Servers: []string{"https://k8s.example:443"}}, ok: true},
		{name: "no server", cfg: kubeapi.Config{CACert: ca.CertPEM()}},
		{name: "http", cfg: kubeapi.Config{Servers: []string{"http://10.0.0.1:8080"}}},
		{name: "a path", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443/api"}}},
		{name: "no host", cfg: kubeapi.Config{Servers: []string{"https://"}}},
		{name: "not a URL", cfg: kubeapi.Config{Servers: []string{"10.0.0.1:6443"}}},
		{name: "bad CA", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443"}, CACert: []byte("not PEM")}},
		{name: "certificate without key", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443"}, ClientCert: cert}},
		{name: "key without certificate", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443"}, ClientKey: key}},
		{name: "mismatched key", cfg: kubeapi.Config{Servers: []string{"https://10.0.0.1:6443"}, ClientCert: cert, ClientKey: mustKey(t)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kubeapi.New(tt.cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pki.EncodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAPIErrors(t *testing.T) {
	cluster := kubetest.Shared(t)
	c := cluster.Client(t)
	ctx := t.Context()
	name := uniqueName(t, "errors")

	apiError := func(t *testing.T, err error, code int, reason string) {
		t.Helper()
		var e *kubeapi.APIError
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want an *APIError", err)
		}
		if e.Code != code || e.Reason != reason || e.Message == "" {
			t.Errorf("APIError = %+v, want code %d, reason %s and a message", e, code, reason)
		}
	}

	t.Run("404", func(t *testing.T) {
		err := c.Get(ctx, "/api/v1/nodes/"+name, nil)
		apiError(t, err, 404, "NotFound")
		if !kubeapi.IsNotFound(err) || kubeapi.IsConflict(err) || kubeapi.IsAlreadyExists(err) {
			t.Errorf("IsNotFound %v, IsConflict %v, IsAlreadyExists %v", kubeapi.IsNotFound(err), kubeapi.IsConflict(err), kubeapi.IsAlreadyExists(err))
		}
		if want := `/api/v1/nodes/` + name; !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	})

	t.Run("409 AlreadyExists", func(t *testing.T) {
		createNode(t, c, name, nil, nil, nil, nil)
		body := []byte(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"` + name + `"}}`)
		err := c.Do(ctx, http.MethodPost, "/api/v1/nodes", kubeapi.ContentJSON, body, nil)
		apiError(t, err, 409, "AlreadyExists")
		if !kubeapi.IsAlreadyExists(err) || kubeapi.IsConflict(err) {
			t.Errorf("IsAlreadyExists %v, IsConflict %v", kubeapi.IsAlreadyExists(err), kubeapi.IsConflict(err))
		}
	})

	t.Run("409 Conflict", func(t *testing.T) {
		var old json.RawMessage
		if err := c.Get(ctx, "/api/v1/nodes/"+name, &old); err != nil {
			t.Fatal(err)
		}
		patch := []byte(`{"metadata":{"labels":{"changed":"1"}}}`)
		if err := c.Do(ctx, http.MethodPatch, "/api/v1/nodes/"+name, kubeapi.ContentMergePatch, patch, nil); err != nil {
			t.Fatal(err)
		}
		err := c.Do(ctx, http.MethodPut, "/api/v1/nodes/"+name, kubeapi.ContentJSON, old, nil)
		apiError(t, err, 409, "Conflict")
		if !kubeapi.IsConflict(err) || kubeapi.IsAlreadyExists(err) {
			t.Errorf("IsConflict %v, IsAlreadyExists %v", kubeapi.IsConflict(err), kubeapi.IsAlreadyExists(err))
		}
	})

	t.Run("403", func(t *testing.T) {
		nobody, err := kubeapi.New(cluster.ClientConfig(t, "nobody", "nogroup"))
		if err != nil {
			t.Fatal(err)
		}
		defer nobody.Close()
		_, err = nobody.Nodes(ctx)
		apiError(t, err, 403, "Forbidden")
	})

	t.Run("401", func(t *testing.T) {
		otherCA, err := pki.NewCA("other", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cluster.Config
		if cfg.ClientCert, cfg.ClientKey, err = otherCA.Issue("stranger", nil, pki.ClientAuth, time.Hour); err != nil {
			t.Fatal(err)
		}
		stranger, err := kubeapi.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		apiError(t, stranger.Readyz(ctx), 401, "Unauthorized")
	})
}

// deadServer is an address where connections are taken and closed at
// once, and the number of connections taken.
func deadServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conn.Close()
		}
	}()
	return "https://" + l.Addr().String(), &n
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

func TestFailover(t *testing.T) {
	cluster := kubetest.Shared(t)
	dead, accepted := deadServer(t)
	refused := closedPort(t)

	cfg := cluster.Config
	cfg.Servers = []string{refused, dead, cluster.URL}
	c, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Nodes(t.Context()); err != nil {
		t.Fatal(err)
	}
	if accepted.Load() == 0 {
		t.Error("the second server was not tried")
	}
	// The server that answered is asked first from now on.
	before := accepted.Load()
	for range 3 {
		if err := c.Readyz(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := accepted.Load(); n != before {
		t.Errorf("the dead server was tried again (%d connections, then %d) after another answered", before, n)
	}

	cfg.Servers = []string{refused, dead}
	none, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	err = none.Readyz(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no API server answered") ||
		!strings.Contains(err.Error(), strings.TrimPrefix(refused, "https://")) || !strings.Contains(err.Error(), strings.TrimPrefix(dead, "https://")) {
		t.Errorf("err = %v, want both servers in it", err)
	}
	if kubeapi.IsNotFound(err) {
		t.Error("no server is not an API error")
	}
}

// fakeServer is an API server answering with handler, and a Config for it.
func fakeServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, kubeapi.Config) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	return srv, kubeapi.Config{
		Servers: []string{srv.URL},
		CACert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	}
}

// A server that takes the connection but never answers is left after
// Config.Timeout for the next one.
func TestFailoverTimeout(t *testing.T) {
	hang := make(chan struct{})
	hanging, cfg := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) }) // before the server's Close
	answering, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"items":[{"metadata":{"name":"n1"}}]}`))
	})
	// Both fake servers' certificates are httptest's.
	cfg.Servers = []string{hanging.URL, answering.URL}
	cfg.Timeout = 2 * time.Second
	c, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes, err := c.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != "n1" {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestResponses(t *testing.T) {
	var otherHits atomic.Int32
	other, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
	})
	const limit = 1 << 20
	_, cfg := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/large":
			w.Write([]byte(strings.Repeat(" ", limit+1)))
		case "/limit":
			w.Write([]byte(strings.Repeat(" ", limit-2) + "{}"))
		case "/text":
			http.Error(w, strings.Repeat("é", 3000), http.StatusServiceUnavailable)
		case "/raw":
			w.Write([]byte(`{"a": [1, 2]}`))
		case "/notjson":
			w.Write([]byte(`<html>`))
		}
	})
	cfg.Servers = append(cfg.Servers, other.URL)
	c, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kubeapi.SetLimits(c, limit, 500)
	ctx := t.Context()

	err = c.Get(ctx, "/large", nil)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("large answer: err = %v", err)
	}
	if err := c.Get(ctx, "/limit", &struct{}{}); err != nil {
		t.Errorf("answer as large as the bound: %v", err)
	}

	err = c.Get(ctx, "/text", nil)
	var e *kubeapi.APIError
	if !errors.As(err, &e) || e.Code != 503 || e.Reason != "" || !strings.HasPrefix(e.Message, "éé") || len(e.Message) > 1100 {
		t.Errorf("text error: %v", err)
	}

	var raw json.RawMessage
	if err := c.Get(ctx, "/raw", &raw); err != nil || string(raw) != `{"a": [1, 2]}` {
		t.Errorf("raw = %s, %v", raw, err)
	}
	if err := c.Get(ctx, "/notjson", &raw); err == nil {
		t.Error("an answer that is not JSON decoded")
	}
	if err := c.Get(ctx, "relative", nil); err == nil {
		t.Error("a path without / accepted")
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the second server got %d requests: answers, even bad ones, are not failures to reach a server", n)
	}
}

// freezer is a TCP proxy to target whose connections can be frozen: their
// bytes stop flowing and nothing closes them, as when the machine at the
// other end loses its power. Connections made after a freeze flow.
type freezer struct {
	addr   string
	mu     sync.Mutex
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{addr: l.Addr().String(), frozen: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			f.mu.Lock()
			frozen := f.frozen
			f.mu.Unlock()
			go f.pipe(in, out, frozen)
			go f.pipe(out, in, frozen)
		}
	}()
	return f
}

// pipe copies until the connection is frozen; then it holds its bytes.
func (f *freezer) pipe(dst, src net.Conn, frozen chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			return
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze freezes the connections made so far.
func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.frozen)
	f.frozen = make(chan struct{})
}

// An HTTP/2 connection whose other end went silent is dropped by its
// health check, and later requests take a new one: a client does not stay
// stuck on it (podnet's daemon did, behind the node's rivers, after a
// control plane lost its power).
func TestSilentConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"proto":"` + r.Proto + `"}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f := newFreezer(t, srv.Listener.Addr().String())
	c, err := kubeapi.New(kubeapi.Config{
		Servers: []string{"https://" + f.addr},
		CACert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got struct{ Proto string }
	if err := c.Get(t.Context(), "/", &got); err != nil {
		t.Fatal(err)
	}
	if got.Proto != "HTTP/2.0" {
		t.Fatalf("the connection speaks %s, not HTTP/2", got.Proto)
	}

	f.freeze()
	if err := c.Get(t.Context(), "/", &got); err == nil {
		t.Fatal("a request over the frozen connection answered")
	}
	// The health check (a ping after Timeout's silence, closed after
	// another Timeout without its answer) takes about 2 s here; 20 s
	// bounds a stuck client, not the check's speed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.Get(t.Context(), "/", &got)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still no answer 20 s after the connection froze: %v", err)
		}
	}
}

// A server that answers 200 with no body, where JSON is expected, is no
// answer: the next server is asked, and with none an error says why.
func TestEmptyAnswer(t *testing.T) {
	empty, cfg := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {})
	answering, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"items":[{"metadata":{"name":"n1"}}]}`))
	})
	cfg.Servers = []string{empty.URL, answering.URL}
	c, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes, err := c.Nodes(t.Context())
	if err != nil || len(nodes) != 1 || nodes[0].Name != "n1" {
		t.Errorf("nodes %+v, %v", nodes, err)
	}
	cfg.Servers = []string{empty.URL}
	only, _ := kubeapi.New(cfg)
	defer only.Close()
	if nodes, err := only.Nodes(t.Context()); err == nil || !strings.Contains(err.Error(), "empty answer") {
		t.Errorf("nodes %+v, err %v: want an empty-answer error", nodes, err)
	}
	// Without a body to decode, an empty 200 is an answer.
	if err := only.Do(t.Context(), http.MethodDelete, "/x", "", nil, nil); err != nil {
		t.Errorf("delete: %v", err)
	}
}
