package worker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/worker"
)

// vaultCluster is three real Vault servers in HA mode with their storage
// in the test's etcd, as on the boot servers (without TLS).
type vaultCluster struct {
	t     *testing.T
	procs map[int]*vaultProc
	mu    sync.Mutex
	order []int // LRNs in the order the step restarted them
}

// vaultProc is one boot server's Vault: the LocalVault of the tests. The
// step's restarts are counted and checked: when one begins, every other
// Vault of the cluster must serve.
type vaultProc struct {
	c        *vaultCluster
	lrn      int
	bin, dir string
	api      *vault.Client
	daemonProc
	restarts atomic.Int32 // by the step
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newVaultCluster(t *testing.T, lrns ...int) *vaultCluster {
	bin := testutil.RequireCommands(t, "vault")[0]
	// Vault's storage prefix, emptied for re-runs with -count.
	prefix := "/" + t.Name() + "-vault/"
	etcdtest.NewClient(t, prefix)
	c := &vaultCluster{t: t, procs: map[int]*vaultProc{}}
	for _, lrn := range lrns {
		p := &vaultProc{c: c, lrn: lrn, bin: bin, dir: t.TempDir()}
		addr, clusterAddr := freeAddr(t), freeAddr(t)
		cfg := map[string]any{
			"storage": map[string]any{"etcd": map[string]string{
				"address": etcdtest.Endpoint(), "etcd_api": "v3", "ha_enabled": "true", "path": prefix, "sync": "false",
			}},
			"listener": map[string]any{"tcp": map[string]string{
				"address": addr, "cluster_address": clusterAddr, "tls_disable": "true",
			}},
			"api_addr":      "http://" + addr,
			"cluster_addr":  "https://" + clusterAddr,
			"disable_mlock": true,
			"ui":            false,
		}
		data, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(p.dir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		vc := vault.DefaultConfig()
		vc.Address = "http://" + addr
		vc.Timeout = 10 * time.Second
		api, err := vault.NewClient(vc)
		if err != nil {
			t.Fatal(err)
		}
		api.ClearToken()
		p.api = api
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.stop)
		c.procs[lrn] = p
	}
	return c
}

// init initialises Vault with one key share, stores the key where setup
// does, and unseals every server.
func (c *vaultCluster) init(ctx context.Context, st *storage.Storage) {
	c.t.Helper()
	first := c.procs[slices.Min(slices.Collect(maps.Keys(c.procs)))]
	var resp *vault.InitResponse
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		resp, err = first.api.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("init vault: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := st.PutVaultSecrets(ctx, resp.Keys[0], resp.RootToken); err != nil {
		c.t.Fatal(err)
	}
	for _, lrn := range slices.Sorted(maps.Keys(c.procs)) {
		if err := bootserver.Unseal(ctx, c.procs[lrn].api, resp.Keys[0]); err != nil {
			c.t.Fatalf("unseal vault of %d: %v", lrn, err)
		}
	}
}

func (p *vaultProc) start() error {
	return p.launch(p.bin, p.dir, "server", "-config="+filepath.Join(p.dir, "config.json"), "-log-level=warn")
}

func (p *vaultProc) stop() { p.stopWithin(20 * time.Second) }

// bounce restarts the process outside the step (an operator, a crash):
// Vault comes back sealed.
func (p *vaultProc) bounce(t *testing.T) {
	t.Helper()
	p.stop()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := p.api.Sys().SealStatus()
		if err == nil && st.Sealed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault of %d did not come back sealed: %v", p.lrn, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Restart implements worker.LocalVault.
func (p *vaultProc) Restart(ctx context.Context) error {
	for lrn, o := range p.c.procs {
		if lrn == p.lrn {
			continue
		}
		if h, err := o.health(); err != nil || h.Sealed {
			p.c.t.Errorf("vault of %d restarts while the vault of %d does not serve (%+v, %v): two are out of service", p.lrn, lrn, h, err)
		}
	}
	p.c.mu.Lock()
	p.c.order = append(p.c.order, p.lrn)
	p.c.mu.Unlock()
	p.restarts.Add(1)
	p.stop()
	return p.start()
}

// Client implements worker.LocalVault.
func (p *vaultProc) Client() *vault.Client { return p.api }

func (p *vaultProc) health() (*vault.HealthResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.api.Sys().HealthWithContext(ctx)
}

// serving checks that every Vault is unsealed and one of them active.
func (c *vaultCluster) serving(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		active, problems := 0, []string{}
		for _, lrn := range slices.Sorted(maps.Keys(c.procs)) {
			h, err := c.procs[lrn].health()
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%d: %v", lrn, err))
			case h.Sealed || !h.Initialized:
				problems = append(problems, fmt.Sprintf("%d: sealed %t, initialised %t", lrn, h.Sealed, h.Initialized))
			case !h.Standby:
				active++
			}
		}
		if len(problems) == 0 && active == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaults not serving: %v, %d active", problems, active)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *vaultCluster) restartOrder() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	order := c.order
	c.order = nil
	return order
}

func (c *vaultCluster) restarts() map[int]int {
	m := map[int]int{}
	for lrn, p := range c.procs {
		m[lrn] = int(p.restarts.Load())
	}
	return m
}

// putRequest writes a new update request of version for servers, as the
// updater does (every status deleted).
func putRequest(t *testing.T, st *storage.Storage, version string, servers ...int) *neco.UpdateRequest {
	t.Helper()
	ctx := context.Background()
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &neco.UpdateRequest{ID: snap.Revision, Version: version, Servers: servers, StartedAt: time.Now()}
	g := storage.PutRequest(snap, req)
	if _, err := st.Client.Txn(ctx).If(g.Cmps...).Then(g.Ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	return req
}

// TestVaultStep runs the vault step on three boot servers whose real Vault
// processes keep their data in etcd, which also holds the CD state.
func TestVaultStep(t *testing.T) {
	ctx := context.Background()
	servers := []int{0, 1, 2}
	vc := newVaultCluster(t, servers...)
	st := storage.New(etcdtest.Client(t))
	vc.init(ctx, st)
	const v0, v1, v2, v3 = "2025.03.10-1", "2025.03.11-1", "2025.03.12-1", "2025.03.13-1"
	// What neco setup records for the Vault it started.
	for _, lrn := range servers {
		if err := st.SetServiceVersion(ctx, lrn, worker.VaultUnit, v0); err != nil {
			t.Fatal(err)
		}
	}

	// runAll runs the step on every server at once and returns the errors.
	runAll := func(t *testing.T, version string, timeout time.Duration) map[int]error {
		t.Helper()
		req := putRequest(t, st, version, servers...)
		var mu sync.Mutex
		errs := map[int]error{}
		var wg sync.WaitGroup
		for i, lrn := range servers {
			step := worker.VaultStep(vc.procs[lrn])
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				err := step.Run(sctx, &worker.StepEnv{LRN: lrn, Request: req, Index: i, Storage: st})
				mu.Lock()
				errs[lrn] = err
				mu.Unlock()
			})
		}
		wg.Wait()
		return errs
	}
	mustRunAll := func(t *testing.T, version string) {
		t.Helper()
		for lrn, err := range runAll(t, version, 2*time.Minute) {
			if err != nil {
				t.Errorf("vault step on %d: %v", lrn, err)
			}
		}
	}
	records := func(t *testing.T) map[int]string {
		t.Helper()
		m := map[int]string{}
		for _, lrn := range servers {
			v, err := st.ServiceVersion(ctx, lrn, worker.VaultUnit)
			if err != nil {
				t.Fatal(err)
			}
			m[lrn] = v
		}
		return m
	}
	pids := func() map[int]int {
		m := map[int]int{}
		for _, lrn := range servers {
			m[lrn] = vc.procs[lrn].pid()
		}
		return m
	}

	t.Run("the version setup recorded restarts nothing", func(t *testing.T) {
		before := pids()
		mustRunAll(t, v0)
		if got := pids(); fmt.Sprint(got) != fmt.Sprint(before) || len(vc.restartOrder()) != 0 {
			t.Errorf("vault restarted: pids %v, then %v", before, got)
		}
		vc.serving(t)
	})

	t.Run("a new version restarts and unseals one vault at a time", func(t *testing.T) {
		mustRunAll(t, v1)
		if got := vc.restartOrder(); fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("restart order %v, want [0 1 2] (one at a time, in the request's order)", got)
		}
		if got := records(t); fmt.Sprint(got) != fmt.Sprint(map[int]string{0: v1, 1: v1, 2: v1}) {
			t.Errorf("records %v", got)
		}
		vc.serving(t)
	})

	t.Run("the same version again restarts nothing", func(t *testing.T) {
		before := pids()
		mustRunAll(t, v1)
		if got := pids(); fmt.Sprint(got) != fmt.Sprint(before) || len(vc.restartOrder()) != 0 {
			t.Errorf("vault restarted: pids %v, then %v", before, got)
		}
	})

	t.Run("a vault sealed before the update is unsealed without a restart", func(t *testing.T) {
		vc.procs[1].bounce(t)
		before := pids()
		mustRunAll(t, v1)
		if got := pids(); fmt.Sprint(got) != fmt.Sprint(before) || len(vc.restartOrder()) != 0 {
			t.Errorf("vault restarted: pids %v, then %v", before, got)
		}
		vc.serving(t)
	})

	t.Run("a vault sealed before a new version is unsealed and restarted in turn", func(t *testing.T) {
		vc.procs[0].bounce(t)
		mustRunAll(t, v2)
		if got := vc.restartOrder(); fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("restart order %v, want [0 1 2]", got)
		}
		vc.serving(t)
	})

	t.Run("a vault that cannot be unsealed fails the step and stops the others", func(t *testing.T) {
		good, err := st.UnsealKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wrong := make([]byte, len(good)/2)
		rand.Read(wrong)
		// A wrong key in etcd (fault injection: nothing writes the key alone).
		if _, err := st.Client.Put(ctx, storage.VaultUnsealKey, hex.EncodeToString(wrong)); err != nil {
			t.Fatal(err)
		}
		// Real workers: the failure aborts the update as any step's does.
		if err := st.SetConfig(ctx, neco.KeyEnv, string(neco.EnvTest)); err != nil {
			t.Fatal(err)
		}
		if err := st.SetConfig(ctx, neco.KeyStepTimeout, "90s"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		for _, lrn := range servers {
			inst := deb.RootInstaller{Root: t.TempDir()}
			if err := inst.Init(); err != nil {
				t.Fatal(err)
			}
			w := &worker.Worker{LRN: lrn, Storage: st, Installer: inst,
				Steps: []worker.Step{worker.VaultStep(vc.procs[lrn]), worker.FinalStep()}}
			wg.Go(func() {
				if err := w.Run(wctx); err != nil {
					t.Errorf("worker %d: %v", lrn, err)
				}
			})
		}
		before := vc.restarts()
		putRequest(t, st, v3, servers...)
		snap := waitStatuses(t, st, 2*time.Minute, func(s map[int]*neco.UpdateStatus) bool {
			for _, lrn := range servers {
				if s[lrn] == nil || s[lrn].Cond != neco.CondAborted {
					return false
				}
			}
			return true
		})
		statuses := snap.CurrentStatuses()
		msg := statuses[0].Message
		t.Logf("boot server 0 aborted: %s", msg)
		if statuses[0].StepName != "vault" || !strings.Contains(msg, "vault did not serve again after its restart for "+v3) ||
			!strings.Contains(msg, "unseal") {
			t.Errorf("boot server 0's abort: %+v", statuses[0])
		}
		for _, lrn := range []int{1, 2} {
			if !strings.Contains(statuses[lrn].Message, "boot server 0 aborted the update at step 1 (vault): not restarting vault here") {
				t.Errorf("boot server %d's abort: %+v", lrn, statuses[lrn])
			}
		}
		after := vc.restarts()
		if after[0] != before[0]+1 || after[1] != before[1] || after[2] != before[2] {
			t.Errorf("restarts went from %v to %v: only boot server 0's vault should have restarted, once", before, after)
		}
		if h, err := vc.procs[0].health(); err != nil || !h.Sealed {
			t.Errorf("vault of 0 after the failed unseal: %+v, %v", h, err)
		}
		if rec := records(t); rec[0] != v2 {
			t.Errorf("boot server 0 recorded %q for a vault that does not serve", rec[0])
		}
		vc.restartOrder()

		// The operator puts the right key back and recovers: the update
		// goes through, boot server 0's vault first.
		if _, err := st.Client.Put(ctx, storage.VaultUnsealKey, good); err != nil {
			t.Fatal(err)
		}
		putRequest(t, st, v3, servers...)
		waitStatuses(t, st, 3*time.Minute, func(s map[int]*neco.UpdateStatus) bool {
			for _, lrn := range servers {
				if s[lrn] == nil || s[lrn].Cond != neco.CondCompleted {
					return false
				}
			}
			return true
		})
		if got := vc.restartOrder(); fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("restart order after recovery %v, want [0 1 2]", got)
		}
		if got := records(t); fmt.Sprint(got) != fmt.Sprint(map[int]string{0: v3, 1: v3, 2: v3}) {
			t.Errorf("records %v", got)
		}
		vc.serving(t)
	})

	t.Run("errors of vault are not taken for an unavailable etcd", func(t *testing.T) {
		// The worker runs a step again at once when etcd was unavailable;
		// a Vault that times out must fail the step instead.
		p := vc.procs[2]
		p.stop()
		defer func() {
			if err := p.start(); err != nil {
				t.Fatal(err)
			}
			if err := bootserver.Unseal(ctx, p.api, mustSecret(t, st)); err != nil {
				t.Fatal(err)
			}
		}()
		req := putRequest(t, st, v3, servers...)
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := worker.VaultStep(p).Run(sctx, &worker.StepEnv{LRN: 2, Request: req, Index: 2, Storage: st})
		if err == nil || !strings.Contains(err.Error(), "does not serve") {
			t.Fatalf("step on a stopped vault: %v", err)
		}
		if etcdutil.Unavailable(err) {
			t.Errorf("%v is classified as etcd unavailable", err)
		}
	})
}

func mustSecret(t *testing.T, st *storage.Storage) string {
	t.Helper()
	key, err := st.UnsealKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// waitStatuses polls the current request's statuses until cond holds.
func waitStatuses(t *testing.T, st *storage.Storage, timeout time.Duration, cond func(map[int]*neco.UpdateStatus) bool) *storage.Snapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var snap *storage.Snapshot
	for time.Now().Before(deadline) {
		var err error
		snap, err = st.Snapshot(context.Background())
		if err == nil && cond(snap.CurrentStatuses()) {
			return snap
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s; statuses %s", timeout, dump(snap.CurrentStatuses()))
	return nil
}
