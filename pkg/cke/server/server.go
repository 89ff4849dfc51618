// Package server is the engine's loop: on every boot server it campaigns
// for leadership of /cke/; the leader reads cluster.yml and the
// constraints at one revision, gathers what every node, the Kubernetes
// etcd and the API servers report, lets decide.DecideOps choose, and runs
// the operations step by step, recording each in etcd. With nothing to
// do it runs the sabakan integration (sabakan.go), which may store a new
// cluster.yml. It wakes on a change of the declaration or on a tick, and
// backs off after a failure.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/nodeexec"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cke/units"
	"github.com/openneco/neco/pkg/etcdutil"
)

// Config tunes the engine.
type Config struct {
	// Name identifies this engine in the election (the host name).
	Name string
	// Interval is the longest time between two reconciliations.
	Interval time.Duration
	// NodeTimeout bounds the status gathering of one node.
	NodeTimeout time.Duration
	// CertTTL is the lifetime of the certificates the engine issues; they
	// are renewed when a third of it is left.
	CertTTL time.Duration
	// SessionTTL is the election's session TTL in seconds: how long a
	// dead leader holds on before another engine takes over.
	SessionTTL int
	// Artifacts are what this release runs on the nodes.
	Artifacts units.Artifacts
	// MaxBackoff caps the wait after a failed operation.
	MaxBackoff time.Duration
}

func (c *Config) defaults() {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = 10 * time.Second
	}
	if c.CertTTL == 0 {
		c.CertTTL = 7 * 24 * time.Hour
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 20
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 2 * time.Minute
	}
}

// Server is one engine.
type Server struct {
	cfg     Config
	storage *storage.Storage
	metrics *metrics
}

// New returns an engine working on st.
func New(st *storage.Storage, cfg Config) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, storage: st, metrics: newMetrics()}
}

// Run campaigns and leads until ctx ends; it returns nil then.
func (s *Server) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		l, err := etcdutil.Campaign(ctx, s.storage.Client(), storage.LeaderElection, s.cfg.Name, s.cfg.SessionTTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			slog.Warn("cke: campaign failed; retrying", "error", err)
			sleep(ctx, 5*time.Second)
			continue
		}
		slog.Info("cke: leading", "name", s.cfg.Name)
		s.metrics.leader.Set(1)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.Lost():
				slog.Warn("cke: leadership lost")
			case <-lctx.Done():
			}
			cancel()
		}()
		err = s.lead(lctx, l)
		cancel()
		s.metrics.leader.Set(0)
		if err != nil && ctx.Err() == nil {
			slog.Error("cke: leading failed", "error", err)
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		l.Resign(rctx)
		rcancel()
		if err != nil && ctx.Err() == nil {
			sleep(ctx, 5*time.Second)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// leader is what one term of leadership holds.
type leader struct {
	*Server
	l       *etcdutil.Leader
	vault   *ckevault.Session
	secrets *secrets
	pools   map[string]*nodeexec.Pool // by SSH user
	signer  ssh.Signer
	certs   map[string]*clientCert // the engine's own, by use
	mu      sync.Mutex
}

// lead is one term: log in to Vault, cancel what the previous leader left
// running, then reconcile until leadership ends.
func (s *Server) lead(ctx context.Context, l *etcdutil.Leader) error {
	if n, err := s.storage.CancelRunning(ctx, l, time.Now()); err != nil {
		return err
	} else if n > 0 {
		slog.Warn("cke: cancelled operations of the previous leader", "count", n)
	}
	ld := &leader{Server: s, l: l, pools: map[string]*nodeexec.Pool{}, certs: map[string]*clientCert{}}
	defer ld.close()

	// Vault: wait until ckecli vault init has run.
	for {
		err := ld.loginVault(ctx)
		if err == nil {
			break
		}
		s.putStatus(ctx, l, &storage.Status{Error: err.Error()})
		slog.Warn("cke: cannot use Vault yet", "error", err)
		sleep(ctx, 10*time.Second)
		if ctx.Err() != nil {
			return nil
		}
	}
	vaultErr := make(chan error, 1)
	go func() { vaultErr <- ld.vault.Run(ctx) }()

	wake := s.watch(ctx)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		started := time.Now()
		did, err := ld.reconcile(ctx)
		s.metrics.reconciled(started, err)
		wait := s.cfg.Interval
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 5*time.Second), s.cfg.MaxBackoff)
			wait = backoff
			slog.Warn("cke: reconciliation failed", "error", err, "retry_in", wait)
		case did:
			// Decide again soon; not at once, so that an operation that
			// succeeds without changing what the nodes report cannot spin.
			backoff, wait = 0, time.Second
		default:
			backoff = 0
		}
		select {
		case <-ctx.Done():
		case err := <-vaultErr:
			return fmt.Errorf("vault: %w", err)
		case <-wake:
		case <-time.After(wait):
		}
	}
	return nil
}

// watch signals a change of what the operator declares.
func (s *Server) watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	for _, w := range []clientv3.WatchChan{
		s.storage.Client().Watch(ctx, storage.KeyCluster),
		s.storage.Client().Watch(ctx, storage.KeyConstraints),
		s.storage.Client().Watch(ctx, storage.PrefixResources, clientv3.WithPrefix()),
		s.storage.Client().Watch(ctx, storage.PrefixSabakan, clientv3.WithPrefix()),
	} {
		go func() {
			for range w {
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}()
	}
	return out
}

func (ld *leader) loginVault(ctx context.Context) error {
	vc, err := ld.storage.GetVaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("vault settings: %w (run ckecli vault init)", err)
	}
	sess, err := ckevault.Login(ctx, ckevault.LoginConfig{Address: vc.Endpoint, CACertPEM: []byte(vc.CACert), RoleID: vc.RoleID, SecretID: vc.SecretID})
	if err != nil {
		return err
	}
	sec, err := loadSecrets(ctx, sess)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(sec.sshKey)
	if err != nil {
		return fmt.Errorf("the SSH key in Vault: %w", err)
	}
	ld.vault, ld.secrets, ld.signer = sess, sec, signer
	return nil
}

func (ld *leader) close() {
	for _, p := range ld.pools {
		p.Close()
	}
}

// pool returns the SSH pool of user.
func (ld *leader) pool(user string) *nodeexec.Pool {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	p := ld.pools[user]
	if p == nil {
		p = nodeexec.NewPool(nodeexec.Config{User: user, Signer: ld.signer, HostKeys: ld.storage,
			DialTimeout: ld.cfg.NodeTimeout, CommandTimeout: 10 * time.Minute})
		ld.pools[user] = p
	}
	return p
}

// clientCert is a certificate the engine uses itself, renewed at half life.
type clientCert struct {
	tls      tls.Certificate
	pem, key []byte
	notAfter time.Time
	lifetime time.Duration
}

// ownCert returns the engine's certificate for a use, issuing it anew when
// half of its life has passed.
func (ld *leader) ownCert(ctx context.Context, use string, spec units.CertSpec) (*clientCert, error) {
	ld.mu.Lock()
	c := ld.certs[use]
	ld.mu.Unlock()
	if c != nil && time.Until(c.notAfter) > c.lifetime/2 {
		return c, nil
	}
	ttl := min(ld.cfg.CertTTL, 24*time.Hour)
	certPEM, keyPEM, notAfter, err := issuer{ld.vault}.Issue(ctx, spec, ttl)
	if err != nil {
		return nil, fmt.Errorf("issue the engine's %s certificate: %w", use, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c = &clientCert{tls: pair, pem: certPEM, key: keyPEM, notAfter: notAfter, lifetime: ttl}
	ld.mu.Lock()
	ld.certs[use] = c
	ld.mu.Unlock()
	return c, nil
}

// etcdClient connects to the Kubernetes etcd on the control planes.
func (ld *leader) etcdClient(ctx context.Context, cps []string) (*clientv3.Client, error) {
	cert, err := ld.ownCert(ctx, "etcd", units.CertSpec{CA: units.CAEtcdClient, Role: units.RoleClient, CommonName: "cke"})
	if err != nil {
		return nil, err
	}
	ca, err := ld.vault.CACert(ctx, units.CAServer)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	eps := make([]string, len(cps))
	for i, a := range cps {
		eps[i] = fmt.Sprintf("https://%s:%d", a, units.EtcdClientPort)
	}
	return clientv3.New(clientv3.Config{
		Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert.tls}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	})
}

func (s *Server) putStatus(ctx context.Context, l *etcdutil.Leader, st *storage.Status) {
	st.Leader, st.Time = s.cfg.Name, time.Now().UTC()
	if err := s.storage.PutStatus(ctx, l, st); err != nil && !errors.Is(err, context.Canceled) {
		slog.Warn("cke: cannot record status", "error", err)
	}
}

// union returns a ∪ b, sorted.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// userOf returns the SSH user of addr: its node's, or for a node that
// left cluster.yml the first node's.
func userOf(c *cke.Cluster, addr string) string {
	if n := c.Node(addr); n != nil {
		return n.User
	}
	return c.Nodes[0].User
}
