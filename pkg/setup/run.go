package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	vault "github.com/hashicorp/vault/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/poll"
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
	Cluster  *bootserver.Cluster
	Servers  []bootserver.Server // every boot server, sorted by LRN
	Me       bootserver.Server
	Paths    bootserver.Paths
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
	// CrashAfter is a test hook: Run returns ErrCrashedOnPurpose right
	// after finishing this stage, to test that a re-run resumes.
	CrashAfter int
}

// ErrCrashedOnPurpose is what Run returns right after the stage that
// Options.CrashAfter names. Run stops there as a crash would: what it
// started (etcd, Vault) keeps running, and the state file and etcd say the
// stage is finished, so that a re-run resumes after it. `neco setup
// --crash-after-stage` exits with status 3 on it.
var ErrCrashedOnPurpose = errors.New("setup crashed on purpose (test hook)")

// MinTokenLength is the shortest bootstrap token accepted.
const MinTokenLength = 16

// state is a server's own record of a setup in progress (0600).
type state struct {
	ClusterToken string `json:"cluster_token"`
	Leader       int    `json:"leader"`
	Servers      []int  `json:"servers"`
	Stage        int    `json:"stage"`
}

func lrns(servers []bootserver.Server) []int {
	out := make([]int, len(servers))
	for i, s := range servers {
		out[i] = s.LRN
	}
	return out
}

func (o *Options) leader() bootserver.Server { return o.Servers[0] }
func (o *Options) isLeader() bool            { return o.Me.LRN == o.leader().LRN }
func (o *Options) log() *slog.Logger         { return o.Log }

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
	if !slices.ContainsFunc(o.Servers, func(s bootserver.Server) bool { return s.LRN == o.Me.LRN }) {
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
	if err := r.openSession(poll.WithLog(ctx, o.log().With("step", "session"))); err != nil {
		return err
	}
	defer r.close()
	if err := r.revive(poll.WithLog(ctx, o.log().With("step", "revive"))); err != nil {
		return err
	}
	for _, s := range steps {
		if st.Stage >= s.stage && s.stage != StageDone {
			continue
		}
		start := time.Now()
		o.log().Info("setup stage", "stage", StageName(s.stage))
		if err := s.f(poll.WithLog(ctx, o.log().With("stage", StageName(s.stage)))); err != nil {
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
			return fmt.Errorf("%w after stage %s", ErrCrashedOnPurpose, StageName(s.stage))
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
		return bootserver.Unseal(wctx, vc, key)
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

func (r *run) connectEtcd() error {
	if r.client != nil {
		return nil
	}
	c, err := etcdutil.New(bootserver.EtcdConfig(r.Cluster, r.Servers, r.Paths, storage.DefaultPrefix))
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
