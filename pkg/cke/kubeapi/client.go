package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxResponseBytes bounds the body of every response: a larger one is an
// error, so that a broken or hostile server cannot exhaust the engine's
// memory. The Node list of a 5,000-node cluster is well below it.
const MaxResponseBytes = 64 << 20

// DefaultTimeout is the time one request may take on one server when
// Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Content types of request bodies.
const (
	ContentJSON       = "application/json"
	ContentMergePatch = "application/merge-patch+json"
	ContentApplyPatch = "application/apply-patch+yaml"
)

// Config says how to reach the API servers.
type Config struct {
	// Servers are the API servers' URLs, https://host:port. A request goes
	// to the server that last answered (at first the first one) and, if it
	// cannot be reached, to the next ones in order.
	Servers []string
	// CACert is the PEM certificate of the CA that issued the servers'
	// certificates; empty means the system's roots.
	CACert []byte
	// ClientCert and ClientKey, PEM, are the client certificate the client
	// authenticates with; both or neither.
	ClientCert []byte
	ClientKey  []byte
	// Timeout bounds one request to one server (DefaultTimeout when zero);
	// the caller's context bounds the whole call.
	Timeout time.Duration
}

// Client is a client of the Kubernetes API. It is safe for concurrent use.
type Client struct {
	servers []string
	http    *http.Client
	timeout time.Duration
	// maxResponse is MaxResponseBytes, and nodePage nodeListPage, but in
	// tests.
	maxResponse int
	nodePage    int
	// next is the index of the server that answered last.
	next atomic.Int32

	discoveryMu sync.Mutex
	// discovery is the resources of each group version fetched so far, by
	// group version ("v1", "apps/v1").
	discovery map[string]map[string]resource
}

// New makes a client from cfg. It connects to nothing yet.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("kubeapi: no API server given")
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: server %q: %w", s, err)
		}
		if u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("kubeapi: server %q is not https://host:port", s)
		}
		servers[i] = "https://" + u.Host
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CACert) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CACert) {
			return nil, errors.New("kubeapi: no PEM certificate in the CA certificate")
		}
		tlsConfig.RootCAs = pool
	}
	switch {
	case len(cfg.ClientCert) > 0 && len(cfg.ClientKey) > 0:
		pair, err := tls.X509KeyPair(cfg.ClientCert, cfg.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: client certificate: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{pair}
	case len(cfg.ClientCert) > 0 || len(cfg.ClientKey) > 0:
		return nil, errors.New("kubeapi: a client certificate needs its key and a key its certificate")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := &http.Transport{
		// No proxy from the environment: API servers are reached directly.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   min(timeout, 10*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: min(timeout, 10*time.Second),
		ForceAttemptHTTP2:   true,
		// A connection that goes silent (its server or the path to it
		// died without a reset, e.g. a powered-off machine behind the
		// node's load balancer) is pinged and closed, as client-go does;
		// otherwise every later request would wait on it until Timeout.
		HTTP2:               &http.HTTP2Config{SendPingTimeout: min(timeout, 15*time.Second), PingTimeout: min(timeout, 10*time.Second)},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		servers:     servers,
		http:        &http.Client{Transport: transport},
		timeout:     timeout,
		maxResponse: MaxResponseBytes,
		nodePage:    nodeListPage,
		discovery:   map[string]map[string]resource{},
	}, nil
}

// Close closes the client's idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Get reads path (with its query, e.g. "/api/v1/nodes?limit=500") and
// decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, "", nil, out)
}

// Do sends a request with body (of contentType, when not nil) to path and
// decodes the JSON answer into out, when out is not nil; out may be a
// *json.RawMessage to keep the answer as it is. An answer other than 2xx is
// an *APIError, wrapped.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	data, err := c.do(ctx, method, path, contentType, body, out != nil)
	if err != nil {
		return err
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("kubeapi: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends the request to the servers in turn until one answers, and
// returns the body of a 2xx answer. When wantBody, an empty 2xx answer is
// no answer: the API server always sends JSON there, and an empty one
// decoded as nothing (no nodes, say) would be a silent wrong result.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, wantBody bool) ([]byte, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("kubeapi: path %q does not start with /", path)
	}
	first := int(c.next.Load())
	var errs []error
	for i := range c.servers {
		n := (first + i) % len(c.servers)
		status, data, err := c.try(ctx, c.servers[n], method, path, contentType, body)
		var tooLarge *APIError
		if errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("kubeapi: %s %s: %w", method, path, err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("kubeapi: %s %s: %w", method, path, err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// The connection may be stuck (e.g. an HTTP/2 one whose
				// flow-control window never reopens, which pings do not
				// reveal): the next request dials a new one.
				c.http.CloseIdleConnections()
			}
			// Not reached, or no answer: the next server may do.
			errs = append(errs, err)
			continue
		}
		if wantBody && status/100 == 2 && len(data) == 0 {
			errs = append(errs, fmt.Errorf("%s: an empty answer (status %d)", c.servers[n], status))
			continue
		}
		c.next.Store(int32(n))
		if status/100 != 2 {
			return nil, fmt.Errorf("kubeapi: %s %s: %w", method, path, parseError(status, data))
		}
		return data, nil
	}
	// One line, each server's error wrapped.
	format := "kubeapi: %s %s: no API server answered: " + strings.TrimSuffix(strings.Repeat("%w; ", len(errs)), "; ")
	return nil, fmt.Errorf(format, append([]any{method, path}, anys(errs)...)...)
}

// try sends the request to one server and returns the answer's status and
// body; an error means there was no whole answer.
func (c *Client) try(ctx context.Context, server, method, path, contentType string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", ContentJSON)
	req.Header.Set("User-Agent", "cke-kubeapi")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxResponse)+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: read answer: %w", server, err)
	}
	if len(data) > c.maxResponse {
		// Too large is not the server's absence: do not try the next one.
		return 0, nil, &APIError{Code: resp.StatusCode, Reason: "ResponseTooLarge",
			Message: fmt.Sprintf("%s answered more than %d bytes", server, c.maxResponse)}
	}
	return resp.StatusCode, data, nil
}

// Readyz asks the API server whether it is ready to serve (GET /readyz);
// an error says why not.
func (c *Client) Readyz(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, "/readyz", "", nil, nil)
}

func anys(errs []error) []any {
	a := make([]any, len(errs))
	for i, e := range errs {
		a[i] = e
	}
	return a
}
