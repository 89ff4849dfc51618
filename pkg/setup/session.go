package setup

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/pki"
)

// session establishes the bootstrap session: the leader loads or makes it
// and serves the rendezvous; a follower fetches and authenticates it.
// Servers that already run etcd skip the rendezvous unless they are leader.
func (r *run) openSession(ctx context.Context) error {
	if r.isLeader() {
		return r.leaderSession(ctx)
	}
	if r.st.Stage >= StageEtcd {
		return r.connectEtcd()
	}
	r.rc = &RendezvousClient{URL: r.Cluster.BootstrapURL(r.leader()), Leader: r.leader().LRN, Token: r.Token}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	s, err := r.rc.Hello(wctx)
	if err != nil {
		return err
	}
	if s.Leader != r.leader().LRN || !slices.Equal(s.Servers, lrns(r.Servers)) {
		return fmt.Errorf("the leader (boot server %d) sets up boot servers %v but this one was given %v: run neco setup with the same list everywhere", s.Leader, s.Servers, lrns(r.Servers))
	}
	if r.st.ClusterToken != "" && r.st.ClusterToken != s.ClusterToken {
		return fmt.Errorf("the leader now runs bootstrap session %s, but this server joined session %s: the leader lost its setup state, and going on would make a second cluster. If setup never finished anywhere, wipe /etc/neco, /var/lib/neco and /var/lib/etcd on every boot server and start again", s.ClusterToken, r.st.ClusterToken)
	}
	r.session = s
	r.st.ClusterToken, r.st.Leader, r.st.Servers = s.ClusterToken, s.Leader, s.Servers
	if err := r.saveState(r.st); err != nil {
		return err
	}
	return r.writeCAs()
}

func (r *run) leaderSession(ctx context.Context) error {
	dir := r.Paths.BootstrapDir
	sessPath := dir + "/session.json"
	var s Session
	data, err := os.ReadFile(sessPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%s: %w", sessPath, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if r.st.Stage > StageNone {
			return fmt.Errorf("this leader's bootstrap session (%s) is gone although its setup had reached stage %s: it cannot resume. If setup never finished anywhere, wipe /etc/neco, /var/lib/neco and /var/lib/etcd on every boot server and start again", sessPath, StageName(r.st.Stage))
		}
		tok := make([]byte, 8)
		rand.Read(tok) //nolint:errcheck
		s = Session{ClusterToken: "neco-" + hex.EncodeToString(tok), Leader: r.Me.LRN, Servers: lrns(r.Servers)}
	default:
		return err
	}
	if !slices.Equal(s.Servers, lrns(r.Servers)) {
		return fmt.Errorf("this leader's interrupted setup was for boot servers %v, not %v: re-run with the same list", s.Servers, lrns(r.Servers))
	}
	if r.st.Stage == StageDone {
		return nil
	}
	cas, err := LoadOrCreateTempCAs(dir)
	if err != nil {
		return err
	}
	r.cas = cas
	s.ServerCA, s.PeerCA, s.ClientCA = string(cas.Server.CertPEM()), string(cas.Peer.CertPEM()), string(cas.Client.CertPEM())
	data, _ = json.MarshalIndent(s, "", "  ")
	if err := fileutil.WriteAtomic(sessPath, data, 0o600); err != nil {
		return err
	}
	r.session = s
	r.st.ClusterToken, r.st.Leader, r.st.Servers = s.ClusterToken, s.Leader, s.Servers
	if err := r.saveState(r.st); err != nil {
		return err
	}
	if err := r.writeCAs(); err != nil {
		return err
	}
	// The rendezvous' own certificate.
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csrPEM, _ := pki.NewCSR(key, r.Me.Name())
	csr, _ := pki.ParseCSR(csrPEM)
	certPEM, err := cas.Sign(bootserver.KindServer, r.Me, csr)
	if err != nil {
		return err
	}
	keyPEM, _ := pki.EncodeKey(key)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	r.rv = &Rendezvous{Session: s, Token: r.Token, CAs: cas, Log: r.Log,
		Signer: func(kind string, lrn int, csr *x509.CertificateRequest) ([]byte, error) {
			srv, err := r.Cluster.Lookup(lrn)
			if i := slices.IndexFunc(r.Servers, func(s bootserver.Server) bool { return s.LRN == lrn }); i >= 0 {
				srv, err = r.Servers[i], nil
			}
			if err != nil {
				return nil, err
			}
			return cas.Sign(kind, srv, csr)
		}}
	addr := net.JoinHostPort(r.Me.Address, strconv.Itoa(r.Cluster.BootstrapPort))
	if err := r.rv.Serve(ctx, addr, cert); err != nil {
		return err
	}
	if r.st.Stage >= StageEtcd {
		return r.connectEtcd()
	}
	return nil
}

// writeCAs installs the session's CA certificates.
func (r *run) writeCAs() error {
	for _, f := range []struct{ path, pem string }{
		{r.Paths.ServerCA, r.session.ServerCA}, {r.Paths.PeerCA, r.session.PeerCA}, {r.Paths.ClientCA, r.session.ClientCA},
	} {
		if cur, err := os.ReadFile(f.path); err == nil && string(cur) == f.pem {
			continue
		}
		if err := fileutil.WriteAtomic(f.path, []byte(f.pem), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) rendezvousBarrier(ctx context.Context, name string) error {
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	return waitBarrier(wctx, name, lrns(r.Servers), func(ctx context.Context) ([]int, error) {
		if r.isLeader() {
			return r.rv.Arrive(name, r.Me.LRN), nil
		}
		return r.rc.Arrive(ctx, name, r.Me.LRN)
	})
}
