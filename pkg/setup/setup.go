// Package setup bootstraps and grows the boot servers of a neco data
// center: `neco setup` (a temporary CA, etcd with mutual TLS, Vault in HA
// with etcd storage and its PKI, certificates re-issued from Vault, etcd
// authentication, the first update request, the CD daemons), `neco join`,
// `neco leave`, and the per-service users and certificates of `neco init`
// and `neco init-local`. docs/bootstrap.md is the operator's guide. Its
// keys under /neco/ are read and written through pkg/neco/storage
// (docs/etcd.md).
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
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/services"
)

// Stages of a setup, in order. A server records the last stage it finished
// in its state file and, once etcd runs, in finish/<LRN>.
const (
	StageNone = iota
	StageCerts
	StageEtcd
	StageVault
	StageReissued
	StageAuth
	StageDone
)

var stageNames = []string{"none", "certs", "etcd", "vault", "reissued", "auth", "done"}

// StageName names a stage.
func StageName(s int) string {
	if s >= 0 && s < len(stageNames) {
		return stageNames[s]
	}
	return strconv.Itoa(s)
}

// Options of Run.
type Options struct {
	Cluster  *Cluster
	Servers  []Server // every boot server, sorted by LRN
	Me       Server
	Paths    Paths
	Token    []byte // the bootstrap token every server was given
	Services services.Manager
	// Version is the installed neco version: the first update request.
	Version string
	// Timeout bounds each wait for the other servers.
	Timeout time.Duration
	// Daemons are the CD daemons started at the end (neco-updater,
	// neco-worker), each run as `<name> --config <Paths.Config>`.
	Daemons []string
	Log     *slog.Logger
	// CrashAfter is a test hook: exit with status 3 right after finishing
	// this stage, to test that a re-run resumes.
	CrashAfter int
}

// MinTokenLength is the shortest bootstrap token accepted.
const MinTokenLength = 16

// state is a server's own record of a setup in progress (0600).
type state struct {
	ClusterToken string `json:"cluster_token"`
	Leader       int    `json:"leader"`
	Servers      []int  `json:"servers"`
	Stage        int    `json:"stage"`
}

func lrns(servers []Server) []int {
	out := make([]int, len(servers))
	for i, s := range servers {
		out[i] = s.LRN
	}
	return out
}

func (o *Options) leader() Server    { return o.Servers[0] }
func (o *Options) isLeader() bool    { return o.Me.LRN == o.leader().LRN }
func (o *Options) log() *slog.Logger { return o.Log }

func (o *Options) loadState() (*state, error) {
	data, err := os.ReadFile(o.Paths.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, err
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Paths.StateFile, err)
	}
	return st, nil
}

func (o *Options) saveState(st *state) error {
	data, _ := json.MarshalIndent(st, "", "  ")
	return fileutil.WriteAtomic(o.Paths.StateFile, data, 0o600)
}

// Run sets this boot server up together with the others. It is safe to
// run again after a crash: every step checks what already exists, and a
// re-run that cannot continue the same cluster fails with advice instead of
// making a second one.
func Run(ctx context.Context, o *Options) error {
	if len(o.Token) < MinTokenLength {
		return fmt.Errorf("the bootstrap token must be at least %d characters (generate one with: head -c 32 /dev/urandom | base64)", MinTokenLength)
	}
	if !slices.ContainsFunc(o.Servers, func(s Server) bool { return s.LRN == o.Me.LRN }) {
		return fmt.Errorf("this server (LRN %d) is not among the boot servers %v", o.Me.LRN, lrns(o.Servers))
	}
	st, err := o.loadState()
	if err != nil {
		return err
	}
	if st.Stage > StageNone && !slices.Equal(st.Servers, lrns(o.Servers)) {
		return fmt.Errorf("this server's interrupted setup was for boot servers %v, not %v: re-run with the same list", st.Servers, lrns(o.Servers))
	}
	if st.Stage == StageDone {
		o.log().Info("this boot server is already set up; nothing to do")
		return nil
	}
	if st.Stage > StageNone {
		o.log().Info("resuming an interrupted setup", "after_stage", StageName(st.Stage))
	}
	if st.Stage < StageEtcd && dataDirHasMember(o.Paths.EtcdDataDir) {
		return fmt.Errorf("%s holds etcd data but this server's setup never started etcd: it belongs to another cluster; move it away before setting up", o.Paths.EtcdDataDir)
	}
	if st.Stage >= StageEtcd && !dataDirHasMember(o.Paths.EtcdDataDir) {
		return fmt.Errorf("this server's etcd data (%s) is gone although its setup had started etcd: the cluster lives on without it. Remove the server from the cluster (neco leave %d on another boot server), wipe %s and %s, then add it back with neco join", o.Paths.EtcdDataDir, o.Me.LRN, o.Paths.StateFile, o.Paths.NecoDir)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{Options: o, st: st}
	steps := []struct {
		stage int
		f     func(context.Context) error
	}{
		{StageCerts, r.certs},
		{StageEtcd, r.etcd},
		{StageVault, r.vault},
		{StageReissued, r.reissue},
		{StageAuth, r.auth},
		{StageDone, r.finish},
	}
	// The leader serves the rendezvous for as long as it runs: a follower
	// that crashed early may need it again.
	if err := r.openSession(withLog(ctx, o.log().With("step", "session"))); err != nil {
		return err
	}
	defer r.close()
	if err := r.revive(withLog(ctx, o.log().With("step", "revive"))); err != nil {
		return err
	}
	for _, s := range steps {
		if st.Stage >= s.stage && s.stage != StageDone {
			continue
		}
		start := time.Now()
		o.log().Info("setup stage", "stage", StageName(s.stage))
		if err := s.f(withLog(ctx, o.log().With("stage", StageName(s.stage)))); err != nil {
			return fmt.Errorf("setup stage %s: %w", StageName(s.stage), err)
		}
		st.Stage = s.stage
		if err := o.saveState(st); err != nil {
			return err
		}
		if r.client != nil {
			if err := r.store().FinishStage(ctx, o.Me.LRN, s.stage); err != nil {
				return fmt.Errorf("record stage %s: %w", StageName(s.stage), err)
			}
		}
		o.log().Info("setup stage finished", "stage", StageName(s.stage), "seconds", time.Since(start).Seconds())
		if o.CrashAfter == s.stage {
			o.log().Warn("crashing on purpose (test hook)", "stage", StageName(s.stage))
			os.Exit(3)
		}
	}
	return nil
}

// run is one execution of Run.
type run struct {
	*Options
	st      *state
	session Session
	cas     *TempCAs // leader only
	rv      *Rendezvous
	rc      *RendezvousClient
	client  *clientv3.Client // etcd as root, namespace /neco/
	vc      *vault.Client    // this server's Vault, logged in
}

// revive starts again what a crashed setup had already started on this
// server: etcd, and Vault (unsealed).
func (r *run) revive(ctx context.Context) error {
	if r.st.Stage >= StageEtcd && r.st.Stage < StageDone {
		if err := r.etcd(ctx); err != nil {
			return err
		}
	}
	if r.st.Stage >= StageVault && r.st.Stage < StageDone {
		vc, err := r.startVault(ctx)
		if err != nil {
			return err
		}
		key, err := r.store().UnsealKey(ctx)
		if err != nil {
			return err
		}
		wctx, cancel := r.waitCtx(ctx)
		defer cancel()
		return Unseal(wctx, vc, key)
	}
	return nil
}

// store is the /neco/ storage on this run's etcd client.
func (r *run) store() *storage.Storage { return storage.New(r.client) }

func (r *run) close() {
	if r.client != nil {
		r.client.Close()
	}
}

func (r *run) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.Timeout)
}

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
	certPEM, err := cas.Sign(KindServer, r.Me, csr)
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
			if i := slices.IndexFunc(r.Servers, func(s Server) bool { return s.LRN == lrn }); i >= 0 {
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

// certs obtains the temporary certificates and waits for every server.
func (r *run) certs(ctx context.Context) error {
	for _, spec := range certSpecs(r.Me, r.Paths) {
		if certValid(spec) == nil {
			continue
		}
		err := issueWith(spec, func(csrPEM []byte) ([]byte, error) {
			if r.isLeader() {
				csr, err := pki.ParseCSR(csrPEM)
				if err != nil {
					return nil, err
				}
				return r.cas.Sign(spec.Kind, r.Me, csr)
			}
			return r.rc.Sign(ctx, r.Me.LRN, spec.Kind, csrPEM)
		})
		if err != nil {
			return err
		}
	}
	return r.rendezvousBarrier(ctx, "certs")
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

// etcd starts this server's member and waits for a quorum.
func (r *run) etcd(ctx context.Context) error {
	u, err := EtcdUnit(r.Cluster, r.Me, r.Servers, r.Paths, "new", r.st.ClusterToken)
	if err != nil {
		return err
	}
	if err := r.Services.Start(ctx, u); err != nil {
		return err
	}
	if err := r.connectEtcd(); err != nil {
		return err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	if err := waitEtcd(wctx, r.client, len(r.Servers)); err != nil {
		return fmt.Errorf("%w; are the other boot servers running neco setup, and can they reach %s?", err, r.Cluster.EtcdPeerURL(r.Me))
	}
	return nil
}

func (r *run) connectEtcd() error {
	if r.client != nil {
		return nil
	}
	c, err := etcdutil.New(EtcdConfig(r.Cluster, r.Servers, r.Paths, storage.DefaultPrefix))
	if err != nil {
		return err
	}
	r.client = c
	return nil
}

// waitStage waits until every server of lrnList finished stage (etcd's
// finish/<LRN> keys are the barrier once etcd runs).
func (r *run) waitStage(ctx context.Context, stage int, who []int) error {
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	return waitBarrier(wctx, StageName(stage), who, func(ctx context.Context) ([]int, error) {
		finished, err := r.store().FinishedStages(ctx)
		if err != nil {
			return nil, err
		}
		var done []int
		for lrn, s := range finished {
			if s >= stage {
				done = append(done, lrn)
			}
		}
		return done, nil
	})
}

func (r *run) vaultClient() (*vault.Client, error) {
	return NewVaultClient(r.Cluster.VaultURL(r.Me), r.Paths)
}

// vault starts Vault; the leader initialises and configures it, everyone
// unseals theirs and gets AppRole credentials.
func (r *run) vault(ctx context.Context) error {
	if !r.isLeader() {
		if err := r.waitStage(ctx, StageVault, []int{r.leader().LRN}); err != nil {
			return err
		}
	}
	vc, err := r.startVault(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	status, err := waitVaultAPI(wctx, vc)
	if err != nil {
		return err
	}
	if r.isLeader() {
		if err := r.initVault(wctx, vc, status.Initialized); err != nil {
			return err
		}
	}
	key, err := r.store().UnsealKey(ctx)
	if err != nil {
		return err
	}
	if err := Unseal(wctx, vc, key); err != nil {
		return err
	}
	if r.isLeader() {
		root, err := r.store().SetupRootToken(ctx)
		if err != nil {
			return err
		}
		vc.SetToken(root)
		if err := configureVault(wctx, vc, r.cas); err != nil {
			return err
		}
		vc.ClearToken()
	}
	return r.ensureAppRole(wctx, vc)
}

// startVault writes Vault's configuration, starts it and waits for its API.
func (r *run) startVault(ctx context.Context) (*vault.Client, error) {
	if err := WriteVaultConfig(r.Cluster, r.Me, r.Servers, r.Paths); err != nil {
		return nil, err
	}
	u, err := VaultUnit(r.Paths)
	if err != nil {
		return nil, err
	}
	if err := r.Services.Start(ctx, u); err != nil {
		return nil, err
	}
	vc, err := r.vaultClient()
	if err != nil {
		return nil, err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	if _, err := waitVaultAPI(wctx, vc); err != nil {
		return nil, err
	}
	return vc, nil
}

func (r *run) initVault(ctx context.Context, vc *vault.Client, initialized bool) error {
	if initialized {
		if _, err := r.store().UnsealKey(ctx); err != nil {
			return fmt.Errorf("vault is initialised but its unseal key is not in etcd (a setup crashed between the two): delete Vault's data with `etcdctl del --prefix %s` (with this server's root certificate) and re-run neco setup", VaultEtcdPath)
		}
		return nil
	}
	resp, err := vc.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("initialise vault: %w", err)
	}
	if err := r.store().PutVaultSecrets(ctx, resp.Keys[0], resp.RootToken); err != nil {
		return fmt.Errorf("store vault's unseal key in etcd (vault is initialised: see docs/bootstrap.md, recovery): %w", err)
	}
	r.log().Info("vault initialised; its unseal key is kept in etcd")
	return nil
}

// ensureAppRole makes sure this server has working AppRole credentials and
// leaves r.vc logged in with them.
func (r *run) ensureAppRole(ctx context.Context, vc *vault.Client) error {
	if err := Login(ctx, vc, r.Paths); err == nil {
		r.vc = vc
		return nil
	}
	root, err := r.store().SetupRootToken(ctx)
	if err != nil {
		return err
	}
	vc.SetToken(root)
	id, err := newSecretID(ctx, vc, r.Me.LRN, 0)
	vc.ClearToken()
	if err != nil {
		return err
	}
	creds, _ := json.Marshal(AppRoleCreds{RoleID: BootServerRole, SecretID: id})
	if err := fileutil.WriteAtomic(r.Paths.AppRole, creds, 0o600); err != nil {
		return err
	}
	if err := Login(ctx, vc, r.Paths); err != nil {
		return err
	}
	r.vc = vc
	return nil
}

// reissue replaces the temporary certificates by ones from Vault, then
// restarts etcd and Vault one server at a time (LRN order) so that the
// cluster keeps its quorum.
func (r *run) reissue(ctx context.Context) error {
	if r.vc == nil {
		vc, err := r.vaultClient()
		if err != nil {
			return err
		}
		if err := Login(ctx, vc, r.Paths); err != nil {
			return err
		}
		r.vc = vc
	}
	if err := IssueFromVault(ctx, r.vc, r.Me, r.Paths); err != nil {
		return err
	}
	// Restarts begin once every server has its Vault credentials: a Vault
	// restarted while another server still asks it for them fails over
	// under that server's feet.
	if err := r.waitStage(ctx, StageVault, lrns(r.Servers)); err != nil {
		return err
	}
	var before []int
	for _, s := range r.Servers {
		if s.LRN < r.Me.LRN {
			before = append(before, s.LRN)
		}
	}
	if err := r.waitStage(ctx, StageReissued, before); err != nil {
		return err
	}
	return RestartAndUnseal(ctx, r.Services, r.client, r.Cluster, r.Me, r.Servers, r.Paths, r.Timeout)
}

// IssueFromVault re-issues every certificate of server s through vc (logged
// in), with new keys made here.
func IssueFromVault(ctx context.Context, vc *vault.Client, s Server, p Paths) error {
	for _, spec := range certSpecs(s, p) {
		err := issueWith(spec, func(csr []byte) ([]byte, error) { return signWithVault(ctx, vc, spec, csr) })
		if err != nil {
			return err
		}
	}
	return nil
}

// RestartAndUnseal restarts etcd and Vault of me, waiting for etcd's
// quorum and unsealing Vault, so that they use renewed certificates. etcd
// restarts only when the other members keep a quorum without it.
func RestartAndUnseal(ctx context.Context, svc services.Manager, client *clientv3.Client, c *Cluster, me Server, servers []Server, p Paths, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := waitQuorumWithout(wctx, client, me); err != nil {
		return err
	}
	if err := svc.Restart(wctx, "etcd"); err != nil {
		return err
	}
	// Ask this member directly: it must serve again before Vault restarts.
	local, err := etcdutil.New(EtcdConfig(c, []Server{me}, p, ""))
	if err != nil {
		return err
	}
	defer local.Close()
	if err := waitEtcd(wctx, local, 1); err != nil {
		return err
	}
	if err := svc.Restart(wctx, "vault"); err != nil {
		return err
	}
	return UnsealLocal(wctx, client, c, me, p)
}

// auth enables etcd authentication once every server uses Vault's
// certificates; the others wait for the leader.
func (r *run) auth(ctx context.Context) error {
	if !r.isLeader() {
		return r.waitStage(ctx, StageAuth, []int{r.leader().LRN})
	}
	if err := r.waitStage(ctx, StageReissued, lrns(r.Servers)); err != nil {
		return err
	}
	st, err := r.client.AuthStatus(ctx)
	if err != nil {
		return err
	}
	if st.Enabled {
		return nil
	}
	return EnableEtcdAuth(ctx, r.client)
}

// finish registers the server, writes the client configuration, makes the
// first update request (leader), starts the CD daemons, and at last the
// leader removes the bootstrap secrets.
func (r *run) finish(ctx context.Context) error {
	if err := WriteLocalConfig(r.Cluster, r.Me, r.Servers, r.Paths); err != nil {
		return err
	}
	if err := WriteHealthAgentDefaults(r.Me, r.Servers, r.Paths); err != nil {
		return err
	}
	if err := r.store().RegisterBootServer(ctx, r.Me.LRN, r.Me.Address); err != nil {
		return fmt.Errorf("register boot server: %w", err)
	}
	// etcd and Vault already run the installed version: neco-worker's etcd
	// and vault steps need not restart them for the first update request,
	// which is that version.
	for _, unit := range []string{"etcd", "vault"} {
		if err := r.store().SetServiceVersion(ctx, r.Me.LRN, unit, r.Version); err != nil {
			return err
		}
	}
	if r.isLeader() {
		// Every server registered with the first request, in one
		// transaction (storage.FirstRequest says why).
		addrs := map[int]string{}
		for _, s := range r.Servers {
			addrs[s.LRN] = s.Address
		}
		if err := r.store().FirstRequest(ctx, addrs, r.Version); err != nil {
			return err
		}
	}
	if err := StartDaemons(ctx, r.Services, r.Daemons, r.Paths, r.Me); err != nil {
		return err
	}
	if !r.isLeader() {
		return nil
	}
	// Every server must be done with the bootstrap secrets first.
	if err := r.store().FinishStage(ctx, r.Me.LRN, StageDone); err != nil {
		return err
	}
	if err := r.waitStage(ctx, StageDone, lrns(r.Servers)); err != nil {
		return err
	}
	return r.cleanup(ctx)
}

// cleanup revokes the initial root token and deletes it and the temporary
// CA keys: afterwards boot servers act through their AppRole credentials.
func (r *run) cleanup(ctx context.Context) error {
	root, err := r.store().SetupRootToken(ctx)
	if err == nil {
		vc, err := r.vaultClient()
		if err != nil {
			return err
		}
		vc.SetToken(root)
		err = retryVault(ctx, func() error { return vc.Auth().Token().RevokeSelfWithContext(ctx, "") })
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			err = nil // revoked by an earlier run that crashed before deleting it
		}
		if err != nil {
			return fmt.Errorf("revoke vault's initial root token: %w", err)
		}
		if err := r.store().DeleteSetupRootToken(ctx); err != nil {
			return err
		}
	}
	for _, n := range []string{"server", "etcd-peer", "etcd-client"} {
		if err := os.Remove(r.Paths.BootstrapDir + "/ca-" + n + ".key"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	r.log().Info("bootstrap secrets removed: vault's initial root token is revoked, the temporary CA keys are deleted")
	return nil
}

// WriteLocalConfig writes /etc/neco/config.yml (etcd as root over mTLS,
// read by neco and the CD daemons), /etc/neco/rack and the cluster
// description.
func WriteLocalConfig(c *Cluster, me Server, servers []Server, p Paths) error {
	cfg := EtcdConfig(c, servers, p, storage.DefaultPrefix)
	data, err := yaml.Marshal(map[string]any{"etcd": cfg})
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p.Config, data, 0o600); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p.Rack, []byte(strconv.Itoa(me.LRN)+"\n"), 0o644); err != nil {
		return err
	}
	full := *c
	full.Servers = servers
	data, err = yaml.Marshal(&full)
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(p.ClusterDef, data, 0o644)
}

// HealthAgentPort is the serf port of node-health-agent on a boot server.
const HealthAgentPort = 7946

// WriteHealthAgentDefaults writes the options of this server's
// node-health-agent (the unit the package ships reads them): advertise
// the server's node address, join the other boot servers. Machines that
// join the serf cluster later name the boot servers too.
func WriteHealthAgentDefaults(me Server, servers []Server, p Paths) error {
	var join []string
	for _, s := range servers {
		if s.LRN != me.LRN {
			join = append(join, s.Address)
		}
	}
	opts := "-advertise " + net.JoinHostPort(me.Address, strconv.Itoa(HealthAgentPort))
	if len(join) > 0 {
		opts += " -join " + strings.Join(join, ",")
	}
	data := "# Written by neco setup (or neco join): node-health-agent of boot server " + strconv.Itoa(me.LRN) + ".\n" +
		"NODE_HEALTH_AGENT_OPTS=\"" + opts + "\"\n"
	return fileutil.WriteAtomic(p.HealthAgentDefaults, []byte(data), 0o644)
}

// DefaultDaemons are the daemons setup and join start at the end: the CD
// daemons, the serf member of the boot server and the state setter.
const DefaultDaemons = "neco-updater,neco-worker,node-health-agent,sabakan-state-setter"

// StartDaemons starts the CD daemons. Under systemd the units the neco
// package ships are enabled as they are; the process runner (tests, hosts
// without systemd) runs them with every path under p's root and their
// metrics on the server's own address, so that simulated boot servers on one
// host do not collide.
func StartDaemons(ctx context.Context, svc services.Manager, names []string, p Paths, me Server) error {
	for _, n := range names {
		if sd, ok := svc.(*services.Systemd); ok {
			if _, err := os.Stat("/lib/systemd/system/" + n + ".service"); err == nil {
				if err := sd.Enable(ctx, n); err != nil {
					return err
				}
				continue
			}
		}
		cmd, err := services.Command(n, daemonArgs(n, p, me)...)
		if err != nil {
			return err
		}
		if err := svc.Start(ctx, services.Unit{Name: n, Description: n + " of neco", Command: cmd, StopTimeout: 30 * time.Second}); err != nil {
			return err
		}
	}
	return nil
}

// daemonArgs are the command-line flags of a CD daemon (cmd/neco-updater,
// cmd/neco-worker) outside systemd.
func daemonArgs(name string, p Paths, me Server) []string {
	args := []string{"-config", p.Config}
	switch name {
	case "neco-updater":
		args = append(args, "-listen", net.JoinHostPort(me.Address, "10090"))
	case "neco-worker":
		args = append(args, "-listen", net.JoinHostPort(me.Address, "10091"),
			"-rack-file", p.Rack, "-cluster", p.ClusterDef,
			"-sabakan-config", filepath.Join(p.Root, "etc", "sabakan", "config.yml"), "-root", p.Root)
	case "node-health-agent":
		// Its options are those of the package's unit (the defaults file).
		return []string{"-bind", net.JoinHostPort(me.Address, strconv.Itoa(HealthAgentPort)),
			"-listen", net.JoinHostPort(me.Address, "7947")}
	case "sabakan-state-setter":
		args = append(args, "-members-url", "http://"+net.JoinHostPort(me.Address, "7947"),
			"-sabakan-url", "http://"+net.JoinHostPort(me.Address, "10080"),
			"-metrics", net.JoinHostPort(me.Address, "10083"))
	}
	return args
}
