package setup

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/poll"
)

// The rendezvous is how boot servers meet before etcd exists. The leader
// (lowest LRN) serves it over HTTPS with a certificate of its temporary
// server CA; every server knows the same bootstrap token, which never crosses
// the network before the leader has proved it knows the token too:
//
//  1. GET /v1/hello answers the session (cluster token, servers, the three
//     temporary CA certificates) and an HMAC-SHA256 of it keyed with the
//     bootstrap token. A follower checks the HMAC, then trusts only the
//     session's server CA for every later request (no MITM can forge it).
//  2. POST /v1/sign (bearer token) signs a follower's CSR; the leader, not
//     the follower, decides the certificate's name and addresses.
//  3. POST /v1/barrier/<name> (bearer token) records that a server arrived
//     and says who else has. Arriving twice is harmless, so a re-run or a
//     leader restart loses nothing.

// Session is what the leader publishes to the followers.
type Session struct {
	ClusterToken string `json:"cluster_token"`
	Leader       int    `json:"leader"`
	Servers      []int  `json:"servers"`
	ServerCA     string `json:"server_ca"`
	PeerCA       string `json:"peer_ca"`
	ClientCA     string `json:"client_ca"`
}

type hello struct {
	Session Session `json:"session"`
	MAC     string  `json:"mac"`
}

func sessionMAC(token []byte, s Session) string {
	data, _ := json.Marshal(s)
	m := hmac.New(sha256.New, token)
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

type signRequest struct {
	LRN  int    `json:"lrn"`
	Kind string `json:"kind"`
	CSR  string `json:"csr"`
}

type signResponse struct {
	Cert string `json:"cert"`
}

type barrierRequest struct {
	LRN int `json:"lrn"`
}

type barrierResponse struct {
	Arrived []int `json:"arrived"`
}

// Rendezvous is the leader's side.
type Rendezvous struct {
	Session Session
	Token   []byte
	CAs     *TempCAs
	Signer  func(kind string, lrn int, csr *x509.CertificateRequest) ([]byte, error)
	Log     *slog.Logger

	mu       sync.Mutex
	barriers map[string]map[int]bool
}

// Arrive records that lrn reached barrier name and returns who has.
func (r *Rendezvous) Arrive(name string, lrn int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.barriers == nil {
		r.barriers = map[string]map[int]bool{}
	}
	if r.barriers[name] == nil {
		r.barriers[name] = map[int]bool{}
	}
	r.barriers[name][lrn] = true
	var out []int
	for l := range r.barriers[name] {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func (r *Rendezvous) authorized(req *http.Request) bool {
	want := "Bearer " + string(r.Token)
	return subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), []byte(want)) == 1
}

// ServeHTTP implements the rendezvous API.
func (r *Rendezvous) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/v1/hello" && req.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, hello{Session: r.Session, MAC: sessionMAC(r.Token, r.Session)})
		return
	}
	if !r.authorized(req) {
		r.Log.Warn("rendezvous: rejected a request with a wrong bootstrap token", "remote", req.RemoteAddr, "path", req.URL.Path)
		http.Error(w, "wrong bootstrap token: every boot server must be given the same --bootstrap-token-file", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil || req.Method != http.MethodPost {
		http.Error(w, "POST a JSON body", http.StatusBadRequest)
		return
	}
	switch {
	case req.URL.Path == "/v1/sign":
		var sr signRequest
		if err := json.Unmarshal(body, &sr); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !slices.Contains(r.Session.Servers, sr.LRN) {
			http.Error(w, fmt.Sprintf("boot server %d is not part of this setup (servers %v)", sr.LRN, r.Session.Servers), http.StatusForbidden)
			return
		}
		csr, err := pki.ParseCSR([]byte(sr.CSR))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cert, err := r.Signer(sr.Kind, sr.LRN, csr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Log.Info("rendezvous: signed a temporary certificate", "lrn", sr.LRN, "kind", sr.Kind)
		writeJSON(w, http.StatusOK, signResponse{Cert: string(cert)})
	case len(req.URL.Path) > len("/v1/barrier/") && req.URL.Path[:len("/v1/barrier/")] == "/v1/barrier/":
		var br barrierRequest
		if err := json.Unmarshal(body, &br); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !slices.Contains(r.Session.Servers, br.LRN) {
			http.Error(w, fmt.Sprintf("boot server %d is not part of this setup", br.LRN), http.StatusForbidden)
			return
		}
		writeJSON(w, http.StatusOK, barrierResponse{Arrived: r.Arrive(req.URL.Path[len("/v1/barrier/"):], br.LRN)})
	default:
		http.NotFound(w, req)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck
}

// Serve runs the rendezvous on addr with the TLS certificate cert until ctx
// ends. It returns once listening, or the listen error.
func (r *Rendezvous) Serve(ctx context.Context, addr string, cert tls.Certificate) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bootstrap rendezvous: listen on %s: %w (is another neco setup running here?)", addr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(r.Log.Handler(), slog.LevelDebug),
	}
	go srv.ServeTLS(l, "", "") //nolint:errcheck
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck
	}()
	return nil
}

// RendezvousClient is a follower's side.
type RendezvousClient struct {
	URL    string
	Leader int
	Token  []byte
	client *http.Client
}

// ErrWrongToken says that this server's bootstrap token differs from the
// leader's.
var ErrWrongToken = errors.New("the bootstrap token differs from the leader's: give every boot server the same --bootstrap-token-file")

// Hello fetches and authenticates the leader's session, retrying until the
// leader answers or ctx ends, and pins the session's server CA.
func (c *RendezvousClient) Hello(ctx context.Context) (Session, error) {
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// Authenticity comes from the HMAC below, then from the pinned CA.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec
	}}
	var h hello
	var lastErr error
	for {
		lastErr = c.get(ctx, insecure, "/v1/hello", &h)
		if lastErr == nil {
			break
		}
		select {
		case <-ctx.Done():
			return Session{}, fmt.Errorf("cannot reach the bootstrap leader (boot server %d) at %s: %v; is neco setup running there, and is its address right in the cluster description?", c.Leader, c.URL, lastErr)
		case <-time.After(time.Second):
		}
	}
	if !hmac.Equal([]byte(h.MAC), []byte(sessionMAC(c.Token, h.Session))) {
		return Session{}, ErrWrongToken
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(h.Session.ServerCA)) {
		return Session{}, errors.New("the leader's session has no usable server CA")
	}
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return h.Session, nil
}

// Sign asks the leader to sign a CSR of the given kind for lrn.
func (c *RendezvousClient) Sign(ctx context.Context, lrn int, kind string, csr []byte) ([]byte, error) {
	var resp signResponse
	if err := c.post(ctx, "/v1/sign", signRequest{LRN: lrn, Kind: kind, CSR: string(csr)}, &resp); err != nil {
		return nil, fmt.Errorf("temporary %s certificate: %w", kind, err)
	}
	return []byte(resp.Cert), nil
}

// Arrive records lrn at barrier name and returns who has arrived.
func (c *RendezvousClient) Arrive(ctx context.Context, name string, lrn int) ([]int, error) {
	var resp barrierResponse
	err := c.post(ctx, "/v1/barrier/"+name, barrierRequest{LRN: lrn}, &resp)
	return resp.Arrived, err
}

func (c *RendezvousClient) get(ctx context.Context, hc *http.Client, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path, nil)
	if err != nil {
		return err
	}
	return do(hc, req, out)
}

func (c *RendezvousClient) post(ctx context.Context, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+string(c.Token))
	req.Header.Set("Content-Type", "application/json")
	return do(c.client, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return ErrWrongToken
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

// waitBarrier arrives at a barrier (through arrive) until every server in
// want has, or ctx ends with an error naming who is missing.
func waitBarrier(ctx context.Context, name string, want []int, arrive func(ctx context.Context) ([]int, error)) error {
	var missing []int
	lastErr, err := poll.Until(ctx, "barrier "+name, 500*time.Millisecond,
		func() string {
			if len(missing) == 0 {
				return ""
			}
			return "boot server(s) " + lrnList(missing) + " not there yet"
		},
		func(ctx context.Context) (bool, error) {
			arrived, err := arrive(ctx)
			if errors.Is(err, ErrWrongToken) {
				return false, poll.Permanent(err)
			}
			if err != nil {
				return false, err
			}
			missing = missing[:0]
			for _, l := range want {
				if !slices.Contains(arrived, l) {
					missing = append(missing, l)
				}
			}
			return len(missing) == 0, nil
		})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		return err
	case len(missing) == 0 && lastErr != nil:
		return fmt.Errorf("barrier %s: %w", name, lastErr)
	}
	return fmt.Errorf("gave up waiting at stage %q for boot server(s) %s: run neco setup there (with the same arguments and token), or check that they can reach this server; its own log says what it waits for", name, lrnList(missing))
}

func lrnList(l []int) string {
	s := ""
	for i, v := range l {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(v)
	}
	return s
}
