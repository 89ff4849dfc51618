//go:build dctest

package dctest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openneco/neco/pkg/githubtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/menu"
)

// TestUpgrade publishes a new neco release on a GitHub API server outside
// the data center (pkg/githubtest, served by this test from the core
// router's namespace: the way out of the data center, with a token) and
// lets the CD system do the rest: neco-updater sees the release and
// requests it; the neco-worker of every boot server downloads it, checks
// it and installs it with dpkg under systemd (systemd-run), hands over to
// its new binary, and the workers run the update steps in lock-step (no
// server ever more than one step ahead of another). Afterwards every boot
// server has the new package, every daemon was restarted onto its new
// binary, and the cluster is healthy.
func TestUpgrade(t *testing.T) {
	d := necoDC(t)
	pods := ensureServing(t, d)
	b := necoBuild(t, necoV2)
	ctx := context.Background()
	boots := d.BootServers()
	op := boots[0]
	h := hosts{t, d.In, time.Minute}
	run, must := h.run, h.must

	// GitHub, outside the data center: on the core router's address.
	gh := githubtest.New()
	gh.Token = "dctest-github-token"
	if _, err := gh.AddPackage("openneco", "neco", "release-"+necoV2, b.Deb); err != nil {
		t.Fatal(err)
	}
	var core menu.Router
	for _, r := range d.Plan.Routers {
		if r.Role == menu.RoleCore {
			core = r
		}
	}
	names := make([]string, 0, len(core.Interfaces))
	for n := range core.Interfaces {
		names = append(names, n)
	}
	sort.Strings(names)
	coreAddr := core.Interfaces[names[0]].Addr().String()
	ns, err := d.In.NetnsOf(core.Name)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := host.InNetns(ns, func() (err error) { ln, err = net.Listen("tcp", coreAddr+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gh.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	api := "http://" + ln.Addr().String() + "/api/v3/"
	t.Logf("GitHub API at %s (core router), release-%s with %s", api, necoV2, b.Deb)

	// Watch the update from the start: every server's step, twice a second.
	var mu sync.Mutex
	var spread []string // snapshots with servers more than one step apart
	var seen []string   // distinct (lrn, step, cond) in order
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := d.Status(sctx, op)
			cancel()
			if err != nil || s.Request == nil || s.Request.Version != necoV2 {
				continue
			}
			var steps []int
			mu.Lock()
			for _, l := range s.Request.Servers {
				st := s.Statuses[strconv.Itoa(l)]
				if st == nil || st.RequestID != s.Request.ID {
					continue
				}
				steps = append(steps, st.Step)
				e := fmt.Sprintf("%d:%d:%s", l, st.Step, st.Cond)
				if !slices.Contains(seen, e) {
					seen = append(seen, e)
				}
			}
			if len(steps) > 1 && slices.Max(steps)-slices.Min(steps) > 1 {
				spread = append(spread, fmt.Sprint(steps))
			}
			mu.Unlock()
		}
	}()

	// The Kubernetes cluster while it happens: the API through a worker's
	// node-local load balancer, and the Deployment's pods.
	_, workers := clusterNodes(t, d)
	probeNode := nodeName(d, workers[0])
	stopAPI := apiProbe(t, d, probeNode)
	stopPods := podsProbe(t, d, probeNode, pods)
	defer stopAPI()
	defer stopPods()

	start, mono := time.Now(), monotonic()
	for _, kv := range [][2]string{{"github-api-url", api}, {"github-repo", "openneco/neco"}, {"github-token", gh.Token},
		{"check-update-interval", "5s"}, {"env", "prod"}} {
		must(op, "neco", "config", "set", kv[0], kv[1])
	}
	if err := d.WaitUpdate(ctx, necoV2, 10*time.Minute); err != nil {
		close(stop)
		wg.Wait()
		dumpBootLogs(t, d)
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("every boot server upgraded to %s and through the update steps %s after the release was configured", necoV2, took.Round(100*time.Millisecond))
	t.Logf("statuses seen (lrn:step:cond): %v", seen)
	// The release's template changed the API servers' flags: the engine
	// rolls them, one control plane at a time.
	rolled := waitRolled(t, d, "--v=1", start, 8*time.Minute)
	time.Sleep(3 * time.Second)
	apiLongest, apiFails, apiTotal := stopAPI()
	podLongest, podFails, podTotal := stopPods()
	t.Logf("the API servers rolled with the release's flags %s after it was configured; API through %s's rivers: %d of %d probes failed (longest %s); the Deployment's pods: %d of %d probes failed (longest %s)",
		rolled.Sub(start).Round(time.Second), probeNode, apiFails, apiTotal, apiLongest.Round(100*time.Millisecond), podFails, podTotal, podLongest.Round(100*time.Millisecond))
	if apiLongest > 5*time.Second {
		t.Errorf("the API was unavailable for %s during the upgrade (target 0–5 s)", apiLongest)
	}
	// A pod that stopped answering is an outage, not one slow answer on a
	// busy machine (each probe allows 2 s, once a second).
	if podLongest > 5*time.Second {
		t.Errorf("a pod of the Deployment stopped answering for %s during the upgrade (%d of %d probes failed)", podLongest, podFails, podTotal)
	}
	if len(spread) > 0 {
		t.Errorf("not lock-step: servers more than one step apart: %v", spread)
	}
	if gh.Hits("/download/") < len(boots) {
		t.Errorf("%d package downloads, want one per boot server", gh.Hits("/download/"))
	}

	s, err := d.Status(ctx, boots[2])
	if err != nil {
		t.Fatal(err)
	}
	if s.Latest != necoV2 || s.Request.Stop || !slices.Equal(s.Request.Servers, d.LRNs()) {
		t.Errorf("after the upgrade: %+v", s)
	}
	for _, bs := range boots {
		if got := must(bs, "dpkg-query", "-W", "-f", "${Version}", "neco"); got != necoV2 {
			t.Errorf("%s: neco %s installed, want %s", bs, got, necoV2)
		}
		// dpkg ran in a transient unit of its own, not in the worker's.
		if out := must(bs, "journalctl", "--no-pager", "-o", "cat", "-u", "neco-dpkg-*"); !strings.Contains(out, "neco-dpkg-") {
			t.Errorf("%s: no transient dpkg unit in the journal:\n%s", bs, out)
		}
		if out := must(bs, "grep", "upgrade neco:amd64", "/var/log/dpkg.log"); !strings.Contains(out, necoV1+" "+necoV2) {
			t.Errorf("%s: dpkg.log: %s", bs, out)
		}
		// Every daemon runs the new binary: restarted after the upgrade
		// began, its executable the installed file (not a deleted one).
		for _, u := range []string{"neco-updater", "neco-worker", "node-health-agent", "sabakan-state-setter", "sabakan", "etcd", "cke"} {
			pid := strings.TrimSpace(must(bs, "systemctl", "show", "-p", "MainPID", "--value", u))
			exe, err := run(bs, "readlink", "/proc/"+pid+"/exe")
			if pid == "0" || err != nil || strings.Contains(exe, "deleted") {
				t.Errorf("%s: %s (pid %s) runs %q: not the installed binary", bs, u, pid, strings.TrimSpace(exe))
			}
			st, _ := strconv.ParseInt(strings.TrimSpace(must(bs, "systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "--value", u)), 10, 64)
			if st < mono {
				t.Errorf("%s: %s was not restarted during the upgrade", bs, u)
			}
		}
		if v := must(bs, "curl", "-sf", "http://127.0.0.1:10080/version"); !strings.Contains(v, necoV2) {
			t.Errorf("%s: sabakan reports %s, want %s", bs, v, necoV2)
		}
	}
	// etcd was restarted for the new version on every server, one at a
	// time under the restart lock: the cluster kept its quorum.
	out := must(op, "etcdctl", "--endpoints", "https://"+d.Plan.Hosts[op].Node0.String()+":2379", "--cacert", "/etc/neco/ca-server.crt",
		"--cert", "/etc/neco/etcd-root.crt", "--key", "/etc/neco/etcd-root.key", "get", "--prefix", storage.DefaultPrefix+storage.InstallPrefix)
	if n := strings.Count(out, necoV2); n < 2*len(boots) {
		t.Errorf("service restarts recorded for %s: %d, want etcd and sabakan on every server:\n%s", necoV2, n, out)
	}
	// node-health-agent restarted on every boot server: each left the
	// serf cluster and joined again.
	healthy := time.Now()
	if err := d.WaitStates(ctx, "healthy", 2*time.Minute, boots...); err != nil {
		t.Error(err)
	}
	t.Logf("boot servers healthy in sabakan %s after the checks began", time.Since(healthy).Round(100*time.Millisecond))
	// The new release's Ignition templates are in sabakan.
	if out := must(boots[1], "sabactl", "ignitions", "get", "cs"); !strings.Contains(out, necoV2) {
		t.Errorf("Ignition templates of cs after the upgrade: %s", out)
	}
	// Stop following releases again.
	must(op, "neco", "config", "set", "env", string(neco.EnvNone))
	fi, _ := os.Stat(b.Deb)
	report(t, map[string]any{"upgrade_s": took.Seconds(), "package_mib": fi.Size() >> 20, "k8s_rolled_s": rolled.Sub(start).Seconds(),
		"api_longest_failure_s": apiLongest.Seconds(), "api_probe_failures": apiFails, "pod_probe_failures": podFails})
}

// monotonic is CLOCK_MONOTONIC in microseconds, the clock of systemd's
// *TimestampMonotonic properties (the machines share the host's).
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
