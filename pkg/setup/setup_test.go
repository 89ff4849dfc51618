package setup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/pki"
)

// TestRendezvous runs the leader's rendezvous and a follower over real TLS.
func TestRendezvous(t *testing.T) {
	cas, err := LoadOrCreateTempCAs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := bootserver.Server{LRN: 0, Address: "127.0.0.1"}
	sess := Session{ClusterToken: "neco-x", Leader: 0, Servers: []int{0, 1, 2},
		ServerCA: string(cas.Server.CertPEM()), PeerCA: string(cas.Peer.CertPEM()), ClientCA: string(cas.Client.CertPEM())}
	token := []byte("0123456789abcdef-secret")
	rv := &Rendezvous{Session: sess, Token: token, CAs: cas, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Signer: func(kind string, lrn int, csr *x509.CertificateRequest) ([]byte, error) {
			return cas.Sign(kind, bootserver.Server{LRN: lrn, Address: "127.0.0.2"}, csr)
		}}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	key, _ := pki.NewKey()
	csrPEM, _ := pki.NewCSR(key, "x")
	csr, _ := pki.ParseCSR(csrPEM)
	certPEM, _ := cas.Sign(bootserver.KindServer, srv, csr)
	keyPEM, _ := pki.EncodeKey(key)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := rv.Serve(ctx, addr, cert); err != nil {
		t.Fatal(err)
	}

	wrong := &RendezvousClient{URL: "https://" + addr, Token: []byte("another-token-of-16")}
	if _, err := wrong.Hello(ctx); !errors.Is(err, ErrWrongToken) {
		t.Fatalf("wrong token: %v", err)
	}

	c := &RendezvousClient{URL: "https://" + addr, Token: token}
	got, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClusterToken != "neco-x" {
		t.Fatalf("session %+v", got)
	}
	signed, err := c.Sign(ctx, 1, bootserver.KindPeer, csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := pki.ParseCert(signed)
	if pc.Subject.CommonName != "boot-1" || pc.CheckSignatureFrom(cas.Peer.Cert) != nil {
		t.Fatalf("peer certificate %v", pc.Subject)
	}
	if _, err := c.Sign(ctx, 7, bootserver.KindPeer, csrPEM); err == nil || !strings.Contains(err.Error(), "not part of this setup") {
		t.Fatalf("a server outside the setup got a certificate: %v", err)
	}
	// A follower that knows the token but forges nothing cannot sign with a
	// wrong bearer token either.
	c2 := &RendezvousClient{URL: "https://" + addr, Token: token}
	c2.Hello(ctx)
	c2.Token = []byte("tampered-token-0000")
	if _, err := c2.Sign(ctx, 1, bootserver.KindPeer, csrPEM); !errors.Is(err, ErrWrongToken) {
		t.Fatalf("tampered bearer: %v", err)
	}

	// The barrier completes when everyone arrived; a missing server is named.
	rv.Arrive("b", 0)
	wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer wcancel()
	err = waitBarrier(wctx, "b", []int{0, 1, 2}, func(ctx context.Context) ([]int, error) { return c.Arrive(ctx, "b", 1) })
	if err == nil || !strings.Contains(err.Error(), "boot server(s) 2") {
		t.Fatalf("barrier: %v", err)
	}
	rv.Arrive("b", 2)
	if err := waitBarrier(ctx, "b", []int{0, 1, 2}, func(ctx context.Context) ([]int, error) { return c.Arrive(ctx, "b", 1) }); err != nil {
		t.Fatal(err)
	}
}

// TestRunRefuses: Run's preflight never starts a second cluster.
func TestRunRefuses(t *testing.T) {
	c := &bootserver.Cluster{Servers: []bootserver.Server{{LRN: 0, Address: "127.0.0.1"}, {LRN: 1, Address: "127.0.0.2"}, {LRN: 2, Address: "127.0.0.3"}}}
	c.FillDefaults()
	base := func(t *testing.T) *Options {
		return &Options{Cluster: c, Servers: c.Servers, Me: c.Servers[1], Paths: bootserver.NewPaths(t.TempDir()),
			Token: []byte("0123456789abcdef"), Timeout: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	writeState := func(t *testing.T, o *Options, st state) {
		data, _ := json.Marshal(st)
		os.MkdirAll(filepath.Dir(o.Paths.StateFile), 0o700)
		os.WriteFile(o.Paths.StateFile, data, 0o600)
	}
	for _, tt := range []struct {
		name  string
		prep  func(t *testing.T, o *Options)
		error string
	}{
		{"short token", func(t *testing.T, o *Options) { o.Token = []byte("short") }, "at least 16"},
		{"other server list", func(t *testing.T, o *Options) {
			writeState(t, o, state{Servers: []int{0, 1, 3}, Stage: StageCerts})
		}, "re-run with the same list"},
		{"etcd data lost", func(t *testing.T, o *Options) {
			writeState(t, o, state{Servers: []int{0, 1, 2}, Stage: StageEtcd})
		}, "etcd data"},
		{"foreign etcd data", func(t *testing.T, o *Options) {
			os.MkdirAll(o.Paths.EtcdDataDir+"/member/snap", 0o700)
		}, "belongs to another cluster"},
		{"leader lost its session", func(t *testing.T, o *Options) {
			o.Me = c.Servers[0]
			writeState(t, o, state{Servers: []int{0, 1, 2}, Stage: StageCerts})
		}, "bootstrap session"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := base(t)
			tt.prep(t, o)
			err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.error) {
				t.Fatalf("got %v, want %q", err, tt.error)
			}
		})
	}
}
