package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

const (
	v1 = "2025.03.01-1"
	v2 = "2025.03.10-2"
	v3 = "2025.03.11-3"
	v4 = "2025.03.12-4"
	v5 = "2025.03.13-5"
)

// TestContinuousDelivery runs the CD system end to end: a fake GitHub
// serving real packages, an updater (two, later), and workers that install
// into scratch roots with real dpkg, all against one etcd.
func TestContinuousDelivery(t *testing.T) {
	c := newCluster(t, nil)
	ctx := context.Background()
	publish(t, c.gh, v1)
	servers := map[int]*bootServer{}
	for _, lrn := range []int{0, 1, 2} {
		servers[lrn] = c.addServer(lrn, v1)
	}
	killUpdaterA := c.startUpdater("updater-a")

	// Watch every write of the request for the duplicate check at the end.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	requests := make(chan *clientv3.Event, 1000)
	wch := etcdtest.NewClient(t, c.prefix).Watch(watchCtx, storage.StatusCurrent)
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				requests <- ev
			}
		}
	}()

	t.Run("first release", func(t *testing.T) {
		c.waitFor("v1 completed", 30*time.Second, completed(v1, 0, 1, 2))
	})

	t.Run("new release installs and completes everywhere", func(t *testing.T) {
		publish(t, c.gh, v2)
		snap := c.waitFor("v2 completed", 60*time.Second, completed(v2, 0, 1, 2))
		for lrn, b := range servers {
			if got := c.installed(b); got != v2 {
				t.Errorf("boot server %d: dpkg reports %s installed, want %s", lrn, got, v2)
			}
			if st := snap.Statuses[lrn]; st.Version != v2 || st.StepName != "final-barrier" {
				t.Errorf("boot server %d status %+v", lrn, st)
			}
			cfg, err := os.ReadFile(filepath.Join(b.root.Root, "etc/sabakan/config.yml"))
			if err != nil || !strings.Contains(string(cfg), "of neco "+v2) {
				t.Errorf("boot server %d: sabakan config not rendered from v2's template: %v", lrn, err)
			}
			if b.svc.Restarts("sabakan") != 2 { // once for v1, once for v2
				t.Errorf("boot server %d: sabakan restarted %d times, want 2", lrn, b.svc.Restarts("sabakan"))
			}
		}
		if n := c.uploader.Count(v2); n != 1 {
			t.Errorf("contents of %s uploaded %d times, want once for the cluster", v2, n)
		}
		for _, f := range []string{"config/dhcp.json", "manifest.json"} {
			if _, err := os.Stat(filepath.Join(c.uploader.Dir, f)); err != nil {
				t.Errorf("contents: %v", err)
			}
		}
		if roles, _ := filepath.Glob(filepath.Join("../../ignitions/roles/*/site.yml")); len(roles) > 0 {
			role := filepath.Base(filepath.Dir(roles[0]))
			p := filepath.Join(c.uploader.Dir, "ignitions", role, v2, "roles", role, "site.yml")
			if _, err := os.Stat(p); err != nil {
				t.Errorf("Ignition template of role %s for %s not uploaded: %v", role, v2, err)
			}
		}
		if snap.Latest != v2 {
			t.Errorf("info/neco-release = %s", snap.Latest)
		}
	})

	t.Run("a failed step aborts every server", func(t *testing.T) {
		step := "sabakan-contents"
		servers[1].fail.Store(&step)
		publish(t, c.gh, v3)
		snap := c.waitFor("v3 stopped", 60*time.Second, stopped)
		if !strings.Contains(snap.Request.StopReason, "boot server 1 aborted at step 2 (sabakan-contents): step 2 (sabakan-contents): injected failure") {
			t.Errorf("stop reason = %q", snap.Request.StopReason)
		}
		time.Sleep(300 * time.Millisecond) // give the others a chance to (wrongly) go on
		snap, _ = c.st.Snapshot(ctx)
		for lrn, st := range snap.CurrentStatuses() {
			if st.Cond == neco.CondCompleted {
				t.Errorf("boot server %d completed a stopped update", lrn)
			}
		}
		if st := snap.CurrentStatuses()[1]; st == nil || st.Cond != neco.CondAborted {
			t.Errorf("boot server 1 status = %+v, want aborted", st)
		}
	})

	t.Run("recover lets the release proceed", func(t *testing.T) {
		servers[1].fail.Store(nil)
		if _, err := c.st.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		c.waitFor("v3 completed", 60*time.Second, completed(v3, 0, 1, 2))
	})

	t.Run("a worker killed mid-step is detected on restart", func(t *testing.T) {
		b := servers[2]
		step := "sabakan-config"
		b.inGate = make(chan struct{})
		b.gateStep.Store(&step)
		publish(t, c.gh, v4)
		select {
		case <-b.inGate:
		case <-time.After(60 * time.Second):
			t.Fatal("worker 2 never entered the gated step")
		}
		c.killWorker(b)
		b.gateStep.Store(nil)
		c.startWorker(b)
		snap := c.waitFor("v4 stopped", 30*time.Second, stopped)
		if !strings.Contains(snap.Request.StopReason, "boot server 2 aborted at step 1 (sabakan-config): neco-worker restarted during step 1") {
			t.Errorf("stop reason = %q", snap.Request.StopReason)
		}
		if _, err := c.st.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		c.waitFor("v4 completed", 60*time.Second, completed(v4, 0, 1, 2))
	})

	t.Run("boot server added then removed reconfigures", func(t *testing.T) {
		servers[3] = c.addServer(3, "") // a fresh server: installs v4 from GitHub
		c.waitFor("v4 on 0-3", 60*time.Second, completed(v4, 0, 1, 2, 3))
		if got := c.installed(servers[3]); got != v4 {
			t.Errorf("new boot server has %q installed", got)
		}
		if err := c.st.UnregisterBootServer(ctx, 1); err != nil {
			t.Fatal(err)
		}
		c.waitFor("v4 on 0,2,3", 60*time.Second, completed(v4, 0, 2, 3))
	})

	t.Run("updater leader killed: another takes over, no duplicate request", func(t *testing.T) {
		c.startUpdater("updater-b")
		leader, _ := etcdLeader(t, c)
		if leader != "updater-a" {
			t.Fatalf("leader = %q, want updater-a", leader)
		}
		killUpdaterA()
		publish(t, c.gh, v5)
		c.waitFor("v5 completed under updater-b", 60*time.Second, completed(v5, 0, 2, 3))
		if leader, _ := etcdLeader(t, c); leader != "updater-b" {
			t.Errorf("leader = %q, want updater-b", leader)
		}
	})

	stopWatch()
	time.Sleep(100 * time.Millisecond)
	close(requests)
	ids := map[int64]int{}
	perVersion := map[string]map[int64]bool{}
	for ev := range requests {
		if ev.Type != clientv3.EventTypePut {
			continue
		}
		var req neco.UpdateRequest
		if err := jsonUnmarshal(ev.Kv.Value, &req); err != nil {
			t.Fatal(err)
		}
		if !req.Stop {
			ids[req.ID]++
			if perVersion[req.Version] == nil {
				perVersion[req.Version] = map[int64]bool{}
			}
			perVersion[req.Version][req.ID] = true
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("request %d written %d times", id, n)
		}
	}
	// v1, v2: one each; v3, v4: one each plus one after recover; v4 two
	// reconfigurations; v5 one, whoever led.
	want := map[string]int{v1: 1, v2: 1, v3: 2, v4: 4, v5: 1}
	for v, n := range want {
		if len(perVersion[v]) != n {
			t.Errorf("version %s requested %d times, want %d", v, len(perVersion[v]), n)
		}
	}
}
