// Package client is the Go client of sabakan's REST API (docs/sabakan-api.md),
// used by sabactl, the BGP node agent, neco, the CD worker and the virtual
// data center tool.
//
// Errors from the server are *Error values that wrap the model's sentinels
// (sabakan.ErrBadRequest for 400, ErrNotFound for 404, ErrConflict for 409,
// ErrUnavailable for 503), so callers test them with errors.Is:
//
//	c, _ := client.New("http://10.69.0.3:10080")
//	ms, err := c.Machines(ctx, &sabakan.Query{Has: sabakan.Filter{Roles: []string{"boot"}}})
//	if errors.Is(err, sabakan.ErrNotFound) { ... }
//
// Boot content methods (images, assets, ignitions) live in files of their
// own in this package.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/user"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

// HeaderUser names the user on whose behalf requests are made.
const HeaderUser = "X-Sabakan-User"

// Client talks to one sabakan server.
type Client struct {
	base    *url.URL // HTTP API, e.g. http://localhost:10080
	tlsBase *url.URL // HTTPS API (disk encryption keys)
	http    *http.Client
	tlsHTTP *http.Client
	user    string
}

// Option configures a Client.
type Option func(*Client) error

// WithTLSServer sets the URL of the HTTPS listener, which serves the disk
// encryption keys (default: the HTTP URL's host on port 10443).
func WithTLSServer(u string) Option {
	return func(c *Client) error {
		p, err := parseBase(u)
		c.tlsBase = p
		return err
	}
}

// WithHTTPClient sets the client used for the HTTP listener.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error { c.http = h; return nil }
}

// WithTLSConfig sets the TLS configuration for the HTTPS listener.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) error {
		c.tlsHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}
		return nil
	}
}

// WithUser sets the X-Sabakan-User header (default: the current OS user).
func WithUser(name string) Option {
	return func(c *Client) error { c.user = name; return nil }
}

// New returns a client of the server at base (http://host:port).
func New(base string, opts ...Option) (*Client, error) {
	p, err := parseBase(base)
	if err != nil {
		return nil, err
	}
	c := &Client{base: p, http: &http.Client{}}
	if u, err := user.Current(); err == nil {
		c.user = u.Username
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.tlsBase == nil {
		t := *p
		t.Scheme = "https"
		t.Host = p.Hostname() + ":10443"
		if strings.Contains(p.Hostname(), ":") {
			t.Host = "[" + p.Hostname() + "]:10443"
		}
		c.tlsBase = &t
	}
	if c.tlsHTTP == nil {
		c.tlsHTTP = &http.Client{}
	}
	return c, nil
}

func parseBase(s string) (*url.URL, error) {
	p, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return nil, fmt.Errorf("client: invalid server URL %q: want http(s)://host:port", s)
	}
	return p, nil
}

// Error is a non-2xx answer of the server.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("sabakan: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("sabakan: %d: %s", e.Status, e.Message)
}

// Unwrap maps the status to the model's sentinel error.
func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusNotFound:
		return sabakan.ErrNotFound
	case e.Status == http.StatusConflict:
		return sabakan.ErrConflict
	case e.Status == http.StatusServiceUnavailable:
		return sabakan.ErrUnavailable
	case e.Status >= 400 && e.Status < 500:
		return sabakan.ErrBadRequest
	}
	return nil
}

// StatusOf is the HTTP status carried by err, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// request is one API call.
type request struct {
	method string
	path   string // under /api/v1 unless it starts with "/"
	query  url.Values
	body   io.Reader
	tls    bool
	ctype  string
}

// do sends r and returns the response of a 2xx answer; the caller closes
// its body. Any other status becomes an *Error.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	base, hc := c.base, c.http
	if r.tls {
		base, hc = c.tlsBase, c.tlsHTTP
	}
	u := *base
	if strings.HasPrefix(r.path, "/") {
		u.Path += r.path
	} else {
		u.Path += "/api/v1/" + r.path
	}
	if r.query != nil {
		u.RawQuery = r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), r.body)
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		req.Header.Set(HeaderUser, c.user)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(data))
	}
	return nil, e
}

// call sends r and decodes a JSON answer into out (unless out is nil).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("sabakan: decode %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// text sends r and returns the answer as a string.
func (c *Client) text(ctx context.Context, r request) (string, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

func jsonBody(v any) (io.Reader, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(data), nil
}

// IPAM returns the IPAM configuration.
func (c *Client) IPAM(ctx context.Context) (*sabakan.IPAMConfig, error) {
	var cfg sabakan.IPAMConfig
	return &cfg, c.call(ctx, request{method: "GET", path: "config/ipam"}, &cfg)
}

// SetIPAM replaces the IPAM configuration (refused once machines exist).
func (c *Client) SetIPAM(ctx context.Context, cfg *sabakan.IPAMConfig) error {
	body, err := jsonBody(cfg)
	if err != nil {
		return err
	}
	return c.call(ctx, request{method: "PUT", path: "config/ipam", body: body, ctype: "application/json"}, nil)
}

// DHCP returns the DHCP configuration.
func (c *Client) DHCP(ctx context.Context) (*sabakan.DHCPConfig, error) {
	var cfg sabakan.DHCPConfig
	return &cfg, c.call(ctx, request{method: "GET", path: "config/dhcp"}, &cfg)
}

// SetDHCP replaces the DHCP configuration.
func (c *Client) SetDHCP(ctx context.Context, cfg *sabakan.DHCPConfig) error {
	body, err := jsonBody(cfg)
	if err != nil {
		return err
	}
	return c.call(ctx, request{method: "PUT", path: "config/dhcp", body: body, ctype: "application/json"}, nil)
}

// Register adds machines, all or none.
func (c *Client) Register(ctx context.Context, specs []sabakan.MachineSpec) error {
	body, err := jsonBody(specs)
	if err != nil {
		return err
	}
	return c.call(ctx, request{method: "POST", path: "machines", body: body, ctype: "application/json"}, nil)
}

// Machines returns the machines matching q (nil: all). Unlike the REST API,
// which answers 404, no match is an empty list.
func (c *Client) Machines(ctx context.Context, q *sabakan.Query) ([]sabakan.Machine, error) {
	var v url.Values
	if q != nil {
		v = q.Values()
	}
	var ms []sabakan.Machine
	err := c.call(ctx, request{method: "GET", path: "machines", query: v}, &ms)
	if errors.Is(err, sabakan.ErrNotFound) {
		return []sabakan.Machine{}, nil
	}
	return ms, err
}

// Machine returns one machine; sabakan.ErrNotFound when it is unknown.
func (c *Client) Machine(ctx context.Context, serial string) (*sabakan.Machine, error) {
	var ms []sabakan.Machine
	err := c.call(ctx, request{method: "GET", path: "machines", query: url.Values{"serial": {serial}}}, &ms)
	if err != nil {
		if errors.Is(err, sabakan.ErrNotFound) {
			return nil, &Error{Status: http.StatusNotFound, Message: "machine " + serial + " is not registered"}
		}
		return nil, err
	}
	if len(ms) != 1 {
		return nil, fmt.Errorf("sabakan: query by serial %s returned %d machines", serial, len(ms))
	}
	return &ms[0], nil
}

// RemoveMachine deletes a retired machine.
func (c *Client) RemoveMachine(ctx context.Context, serial string) error {
	return c.call(ctx, request{method: "DELETE", path: "machines/" + url.PathEscape(serial)}, nil)
}

// State returns a machine's life-cycle state.
func (c *Client) State(ctx context.Context, serial string) (sabakan.MachineState, error) {
	s, err := c.text(ctx, request{method: "GET", path: "state/" + url.PathEscape(serial)})
	return sabakan.MachineState(strings.TrimSpace(s)), err
}

// SetState moves a machine to another life-cycle state.
func (c *Client) SetState(ctx context.Context, serial string, state sabakan.MachineState) error {
	return c.call(ctx, request{method: "PUT", path: "state/" + url.PathEscape(serial), body: strings.NewReader(string(state)), ctype: "text/plain"}, nil)
}

// SetLabel adds or replaces a label of a machine.
func (c *Client) SetLabel(ctx context.Context, serial, name, value string) error {
	return c.call(ctx, request{method: "PUT", path: "labels/" + url.PathEscape(serial) + "/" + url.PathEscape(name), body: strings.NewReader(value), ctype: "text/plain"}, nil)
}

// RemoveLabel removes a label of a machine.
func (c *Client) RemoveLabel(ctx context.Context, serial, name string) error {
	return c.call(ctx, request{method: "DELETE", path: "labels/" + url.PathEscape(serial) + "/" + url.PathEscape(name)}, nil)
}

// SetRetireDate sets the date a machine is planned to retire.
func (c *Client) SetRetireDate(ctx context.Context, serial string, date time.Time) error {
	return c.call(ctx, request{method: "PUT", path: "retire-date/" + url.PathEscape(serial), body: strings.NewReader(date.UTC().Format(time.RFC3339)), ctype: "text/plain"}, nil)
}

// Logs calls fn with each audit entry of the UTC days since..until (until
// excluded; zero times mean unbounded), oldest first.
func (c *Client) Logs(ctx context.Context, since, until time.Time, fn func(*sabakan.AuditEntry) error) error {
	v := url.Values{}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format("20060102"))
	}
	if !until.IsZero() {
		v.Set("until", until.UTC().Format("20060102"))
	}
	resp, err := c.do(ctx, request{method: "GET", path: "logs", query: v})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e sabakan.AuditEntry
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("sabakan: decode audit log: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
}

// AddLog records in the audit log an action taken on the machine with the
// serial outside sabakan (a power cycle, say), with this client's user, and
// returns the entry as stored. category must be one clients may append
// (sabakan.AppendableCategories: sabakan.AuditPower); action matches
// ^[a-z][a-z0-9-]{0,31}$ and detail is at most 1024 bytes of UTF-8 (else
// sabakan.ErrBadRequest). An unknown machine is sabakan.ErrNotFound. The
// endpoint, POST /api/v1/logs, is an extension of the reference API.
func (c *Client) AddLog(ctx context.Context, category sabakan.AuditCategory, serial, action, detail string) (*sabakan.AuditEntry, error) {
	body, err := jsonBody(map[string]string{"category": string(category), "instance": serial, "action": action, "detail": detail})
	if err != nil {
		return nil, err
	}
	var e sabakan.AuditEntry
	if err := c.call(ctx, request{method: "POST", path: "logs", body: body, ctype: "application/json"}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// PutCrypt stores the encryption key of a machine's disk (HTTPS).
func (c *Client) PutCrypt(ctx context.Context, serial, path string, key []byte) error {
	return c.call(ctx, request{method: "PUT", path: "crypts/" + url.PathEscape(serial) + "/" + url.PathEscape(path), body: bytes.NewReader(key), tls: true, ctype: "application/octet-stream"}, nil)
}

// Crypt returns the encryption key of a machine's disk (HTTPS).
func (c *Client) Crypt(ctx context.Context, serial, path string) ([]byte, error) {
	s, err := c.text(ctx, request{method: "GET", path: "crypts/" + url.PathEscape(serial) + "/" + url.PathEscape(path), tls: true})
	return []byte(s), err
}

// DeleteCrypts deletes every disk key of a retiring machine and returns the
// disk paths whose keys were deleted (HTTPS).
func (c *Client) DeleteCrypts(ctx context.Context, serial string) ([]string, error) {
	var paths []string
	return paths, c.call(ctx, request{method: "DELETE", path: "crypts/" + url.PathEscape(serial), tls: true}, &paths)
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	return v.Version, c.call(ctx, request{method: "GET", path: "/version"}, &v)
}

// Health returns nil when the server reports itself healthy.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, request{method: "GET", path: "/health"}, nil)
}

// GraphQLError is an error of a GraphQL answer.
type GraphQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e *GraphQLError) Error() string { return "sabakan graphql: " + e.Message }

// GraphQL runs a query with variables and decodes its data into out. The
// first error of the answer, if any, is returned as a *GraphQLError.
func (c *Client) GraphQL(ctx context.Context, query string, variables map[string]any, out any) error {
	body, err := jsonBody(map[string]any{"query": query, "variables": variables})
	if err != nil {
		return err
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []GraphQLError  `json:"errors"`
	}
	if err := c.call(ctx, request{method: "POST", path: "/graphql", body: body, ctype: "application/json"}, &resp); err != nil {
		return err
	}
	if len(resp.Errors) > 0 {
		return &resp.Errors[0]
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(resp.Data, out)
}
