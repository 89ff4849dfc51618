//go:build dctest

package dctest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestKubernetes makes the bootstrapped data center's workers one
// Kubernetes cluster as an operator would (their Ignition applied, then
// `neco init-data --cke-template`), and lets the boot servers' Kubernetes
// engine keep it by itself from the machine states in sabakan:
//
//   - built: every healthy compute server a node, every node Ready, three
//     control planes in three racks;
//   - a Deployment spread across racks serves; kubectl logs and exec work;
//   - a control plane loses its power: sabakan marks it unreachable, the
//     engine replaces it with a healthy machine and the Kubernetes etcd
//     member with it, while a probe through a worker's node-local load
//     balancer measures the API's longest unavailability; powered on
//     again, the machine is back as a worker;
//   - a worker loses its power: tainted, its pods rescheduled elsewhere;
//     powered on again, back in the cluster and untainted;
//   - a machine set to retiring is drained (NoExecute), and once retired,
//     removed from the cluster.
func TestKubernetes(t *testing.T) {
	d := necoDC(t)
	ctx := context.Background()
	h := hosts{t, d.In, 2 * time.Minute}
	boot0 := d.BootServers()[0]

	want, err := d.KubernetesMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 4 {
		t.Fatalf("%d healthy compute servers (%v): the suite needs 4", len(want), want)
	}
	start := time.Now()
	if err := d.EnableKubernetes(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitKubernetes(ctx, len(want), 12*time.Minute); err != nil {
		dumpKubernetes(t, d)
		t.Fatal(err)
	}
	built := time.Since(start)
	t.Logf("the Kubernetes cluster: %d nodes Ready %s after neco init-data --cke-template", len(want), built.Round(time.Second))

	t.Run("built", func(t *testing.T) {
		nodes, err := d.KubeNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		racks := map[uint]bool{}
		for _, n := range nodes {
			names = append(names, n.Name)
			if n.ControlPlane {
				racks[d.Plan.Hosts[nodeName(d, n.Name)].Rack] = true
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("nodes %v, want the healthy compute servers %v", names, want)
		}
		if len(racks) != 3 {
			t.Errorf("control planes in racks %v, want three racks", racks)
		}
		out := h.must(boot0, "ckecli", "history", "-n", "50")
		if !strings.Contains(out, "update-cluster") {
			t.Errorf("no update-cluster operation of the sabakan integration in the history:\n%s", out)
		}
	})

	// The test's patience, once the cluster is built (the defaults ride
	// out a reboot): a control plane is replaced 20 s after it became
	// unreachable, a retired machine leaves 10 s after.
	h.must(boot0, "ckecli", "constraints", "set", "wait-seconds-to-replace-control-plane", "20")
	h.must(boot0, "ckecli", "constraints", "set", "wait-seconds-to-remove-retired", "10")

	t.Run("a Deployment across racks serves", func(t *testing.T) { deploymentServes(t, d) })
	t.Run("a control plane loses its power", func(t *testing.T) { replaceControlPlane(t, d) })
	t.Run("a worker loses its power", func(t *testing.T) { workerPowerCycle(t, d) })
	t.Run("a retiring machine is drained and removed", func(t *testing.T) { retireNode(t, d) })
	t.Logf("peak memory (PSS of every process of the data center, Kubernetes included) so far: %d MiB", shared.peakPSS>>20)
	report(t, map[string]any{"cluster_ready_s": built.Seconds(), "nodes": len(want), "peak_pss_mib": shared.peakPSS >> 20})
}

// ensureServing makes sure the shared data center runs the Kubernetes
// cluster and the serve Deployment (TestKubernetes makes them; a suite run
// alone makes them here), and returns the Deployment's pods.
func ensureServing(t *testing.T, d *necodc.DC) []podInfo {
	t.Helper()
	ensureKubernetes(t, d)
	ctx := context.Background()
	if out, err := d.Apply(ctx, "serve", necodc.ServeManifest); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return waitServing(t, d, 5*time.Minute)
}

type podInfo struct {
	Name, Node, Phase string
	Ready             bool
}

func servePods(ctx context.Context, d *necodc.DC) ([]podInfo, error) {
	out, err := d.Kubectl(ctx, "get", "pods", "-l", "app=serve", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				Phase      string `json:"phase"`
				Conditions []struct{ Type, Status string }
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var pods []podInfo
	for _, it := range list.Items {
		if it.Metadata.DeletionTimestamp != nil {
			continue
		}
		p := podInfo{Name: it.Metadata.Name, Node: it.Spec.NodeName, Phase: it.Status.Phase}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				p.Ready = c.Status == "True"
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// waitServing waits until the Deployment has 3 Ready pods, none on the
// nodes in avoid, and returns them.
func waitServing(t *testing.T, d *necodc.DC, limit time.Duration, avoid ...string) []podInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var pods []podInfo
	err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		var err error
		if pods, err = servePods(ctx, d); err != nil {
			return false
		}
		ready := 0
		for _, p := range pods {
			if p.Ready && !slices.Contains(avoid, p.Node) {
				ready++
			}
		}
		return ready == 3 && len(pods) == 3
	})
	if err != nil {
		dumpKubernetes(t, d)
		t.Fatalf("the Deployment has not 3 Ready pods off %v after %s: %+v", avoid, limit, pods)
	}
	return pods
}

func deploymentServes(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	h := hosts{t, d.In, 2 * time.Minute}
	boot0 := d.BootServers()[0]
	if out, err := d.Apply(ctx, "serve", necodc.ServeManifest); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := time.Now()
	pods := waitServing(t, d, 5*time.Minute)
	t.Logf("3 pods of the Deployment Ready %s after apply", time.Since(start).Round(100*time.Millisecond))
	racks := map[uint]bool{}
	for _, p := range pods {
		racks[d.Plan.Hosts[nodeName(d, p.Node)].Rack] = true
		// Each answers from its node, across the fabric from boot-0.
		got := strings.TrimSpace(h.must(boot0, "curl", "-sf", "--max-time", "5", "http://"+p.Node+":"+strconv.Itoa(necodc.ServePort)+"/hostname"))
		if got != nodeName(d, p.Node) {
			t.Errorf("pod %s on %s answered hostname %q", p.Name, p.Node, got)
		}
	}
	if len(racks) != 3 {
		t.Errorf("the pods run in racks %v, want three", racks)
	}
	// kubectl exec and logs reach the kubelets.
	out, err := d.Kubectl(ctx, "exec", pods[0].Name, "--", "/agnhost", "--help")
	if err != nil || !strings.Contains(out, "netexec") {
		t.Errorf("kubectl exec: %v\n%s", err, out)
	}
	out, err = d.Kubectl(ctx, "logs", pods[0].Name)
	if err != nil || !strings.Contains(out, strconv.Itoa(necodc.ServePort)) {
		t.Errorf("kubectl logs: %v\n%s", err, out)
	}
}

// nodeName is the vdc machine of a node address.
func nodeName(d *necodc.DC, addr string) string {
	for name, hp := range d.Plan.Hosts {
		if hp.Node0.String() == addr {
			return name
		}
	}
	return addr
}

// clusterNodes reads cluster.yml's control planes and workers.
func clusterNodes(t *testing.T, d *necodc.DC) (cps, workers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cps, workers, err := d.ClusterNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cps, workers
}

// engineIdle reports whether the engine's last decision has no operation.
func engineIdle(ctx context.Context, d *necodc.DC) bool {
	out, err := d.In.Run(ctx, d.BootServers()[0], "ckecli", "status", "-o", "json")
	if err != nil {
		return false
	}
	var st struct {
		Ops []json.RawMessage `json:"ops"`
	}
	return json.Unmarshal([]byte(out), &st) == nil && len(st.Ops) == 0
}

// probe runs check (a shell command) in node every second under a
// transient unit until the returned stop, which reports the longest time
// checks kept failing, the failures and the checks.
func probe(t *testing.T, d *necodc.DC, node, name, check string) (stop func() (longest time.Duration, fails, total int)) {
	t.Helper()
	h := hosts{t, d.In, time.Minute}
	log := "/root/probe/" + name + ".log"
	loop := `mkdir -p /root/probe; rm -f ` + log + `; while :; do
if ` + check + ` >/dev/null 2>&1; then r=ok; else r=fail; fi
echo "$(date +%s.%N) $r" >> ` + log + `; sleep 1; done`
	h.must(node, "systemd-run", "--unit", "dctest-probe-"+name, "--collect", "sh", "-c", loop)
	var once sync.Once
	var longest time.Duration
	var fails, total int
	return func() (time.Duration, int, int) {
		once.Do(func() {
			h.run(node, "systemctl", "stop", "dctest-probe-"+name)
			var failSince float64
			for _, line := range strings.Split(strings.TrimSpace(h.must(node, "cat", log)), "\n") {
				f := strings.Fields(line)
				if len(f) != 2 {
					continue
				}
				ts, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					continue
				}
				total++
				if f[1] != "ok" {
					fails++
					if failSince == 0 {
						failSince = ts
					}
					continue
				}
				if failSince != 0 {
					longest = max(longest, time.Duration((ts-failSince)*float64(time.Second)))
					failSince = 0
				}
			}
		})
		return longest, fails, total
	}
}

// apiProbe asks /readyz through node's rivers (127.0.0.1:16443), as the
// node's kubelet reaches the API, with the admin certificate of boot-0's
// kubeconfig.
func apiProbe(t *testing.T, d *necodc.DC, node string) (stop func() (longest time.Duration, fails, total int)) {
	t.Helper()
	h := hosts{t, d.In, time.Minute}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CA string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert string `json:"client-certificate-data"`
				Key  string `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
	}
	if _, err := d.Kubectl(context.Background(), "version"); err != nil { // a fresh kubeconfig
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(h.must(d.BootServers()[0], "cat", "/root/.kube/config")), &kc); err != nil || len(kc.Users) == 0 || len(kc.Clusters) == 0 {
		t.Fatalf("boot-0's kubeconfig: %v", err)
	}
	for file, data := range map[string]string{"ca.crt": kc.Clusters[0].Cluster.CA, "admin.crt": kc.Users[0].User.Cert, "admin.key": kc.Users[0].User.Key} {
		pem, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatal(err)
		}
		h.must(node, "sh", "-c", `mkdir -p /root/probe && printf %s "$1" > /root/probe/`+file, "sh", string(pem))
	}
	return probe(t, d, node, "api", "curl -sf -o /dev/null --max-time 2 --cacert /root/probe/ca.crt --cert /root/probe/admin.crt --key /root/probe/admin.key https://127.0.0.1:16443/readyz")
}

// podsProbe asks every pod of the serve Deployment, from node, for its
// host name: a check fails when one of them does not answer.
func podsProbe(t *testing.T, d *necodc.DC, node string, pods []podInfo) (stop func() (longest time.Duration, fails, total int)) {
	t.Helper()
	var checks []string
	for _, p := range pods {
		checks = append(checks, fmt.Sprintf("curl -sf -o /dev/null --max-time 2 http://%s:%d/hostname", p.Node, necodc.ServePort))
	}
	return probe(t, d, node, "pods", strings.Join(checks, " && "))
}

func replaceControlPlane(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	cps, workers := clusterNodes(t, d)
	if len(workers) == 0 {
		t.Fatal("no worker to probe from")
	}
	victimAddr := cps[len(cps)-1]
	victim := nodeName(d, victimAddr)
	probeNode := nodeName(d, workers[0])
	stopProbe := apiProbe(t, d, probeNode)
	probing := true
	defer func() {
		if probing {
			stopProbe()
		}
	}()
	time.Sleep(3 * time.Second)

	start := time.Now()
	if err := d.In.Stop(ctx, victim, true); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitStates(ctx, sabakan.StateUnreachable, 2*time.Minute, victim); err != nil {
		t.Fatal(err)
	}
	unreachable := time.Since(start)
	// Replaced: three control planes, the victim not one of them, each a
	// Ready node, and the engine with nothing left to do.
	var newCPs []string
	wctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	err := proc.WaitFor(wctx, 2*time.Second, func() bool {
		newCPs, _ = clusterNodes(t, d)
		if len(newCPs) != 3 || slices.Contains(newCPs, victimAddr) {
			return false
		}
		nodes, err := d.KubeNodes(wctx)
		if err != nil {
			return false
		}
		ready := 0
		for _, n := range nodes {
			if slices.Contains(newCPs, n.Name) && n.Ready {
				ready++
			}
		}
		return ready == 3 && engineIdle(wctx, d)
	})
	if err != nil {
		dumpKubernetes(t, d)
		t.Fatalf("control planes %v after %s: %s not replaced", newCPs, 6*time.Minute, victimAddr)
	}
	replaced := time.Since(start)
	longest, fails, total := stopProbe()
	probing = false
	t.Logf("%s (%s) powered off: unreachable in sabakan after %s, replaced (control planes %v) after %s; API through %s's rivers: %d of %d probes failed, longest failure %s",
		victim, victimAddr, unreachable.Round(100*time.Millisecond), newCPs, replaced.Round(time.Second), probeNode, fails, total, longest.Round(100*time.Millisecond))
	if longest > 5*time.Second {
		t.Errorf("the API was unavailable for %s through a node's rivers (target 0–5 s)", longest)
	}
	// The etcd members are the new control planes.
	out, err := d.In.Run(ctx, d.BootServers()[0], "ckecli", "status")
	if err != nil {
		t.Errorf("ckecli status: %v\n%s", err, out)
	}

	// Powered on again: healthy, and a Ready worker.
	if err := d.In.Start(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitStates(ctx, sabakan.StateHealthy, 3*time.Minute, victim); err != nil {
		t.Fatal(err)
	}
	waitNode(t, d, victimAddr, false, 5*time.Minute)
	report(t, map[string]any{"cp_unreachable_s": unreachable.Seconds(), "cp_replaced_s": replaced.Seconds(),
		"api_longest_failure_s": longest.Seconds(), "api_probe_failures": fails, "api_probes": total})
}

// waitNode waits until addr is a Ready node with no cke.cybozu.com/state
// taint (or, with gone, no node at all).
func waitNode(t *testing.T, d *necodc.DC, addr string, gone bool, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last string
	err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		nodes, err := d.KubeNodes(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, n := range nodes {
			if n.Name == addr {
				last = fmt.Sprintf("%+v", n)
				return !gone && n.Ready && !slices.ContainsFunc(n.Taints, func(s string) bool { return strings.HasPrefix(s, "cke.cybozu.com/state=") })
			}
		}
		last = "no node " + addr
		return gone
	})
	if err != nil {
		dumpKubernetes(t, d)
		t.Fatalf("node %s (gone=%v) after %s: %s", addr, gone, limit, last)
	}
}

// waitTaint waits until node addr has taint (key=value:effect).
func waitTaint(t *testing.T, d *necodc.DC, addr, taint string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err := proc.WaitFor(ctx, time.Second, func() bool {
		nodes, err := d.KubeNodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.Name == addr {
				return slices.Contains(n.Taints, taint)
			}
		}
		return false
	})
	if err != nil {
		dumpKubernetes(t, d)
		t.Fatalf("node %s has no taint %s after %s", addr, taint, limit)
	}
	return time.Since(start)
}

func workerPowerCycle(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	pods := waitServing(t, d, 5*time.Minute)
	_, workers := clusterNodes(t, d)
	// A worker that runs a pod of the Deployment.
	var victimAddr string
	for _, p := range pods {
		if slices.Contains(workers, p.Node) {
			victimAddr = p.Node
		}
	}
	if victimAddr == "" {
		t.Skipf("no pod of the Deployment on a worker (pods %+v, workers %v)", pods, workers)
	}
	victim := nodeName(d, victimAddr)
	start := time.Now()
	if err := d.In.Stop(ctx, victim, true); err != nil {
		t.Fatal(err)
	}
	tainted := waitTaint(t, d, victimAddr, "cke.cybozu.com/state=unreachable:NoSchedule", 3*time.Minute)
	waitServing(t, d, 4*time.Minute, victimAddr)
	moved := time.Since(start)
	t.Logf("%s powered off: tainted unreachable after %s, its pod running elsewhere after %s", victim, tainted.Round(100*time.Millisecond), moved.Round(100*time.Millisecond))

	if err := d.In.Start(ctx, victim); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitNode(t, d, victimAddr, false, 5*time.Minute)
	back := time.Since(start)
	t.Logf("%s powered on: a Ready, untainted node again after %s", victim, back.Round(100*time.Millisecond))
	report(t, map[string]any{"worker_tainted_s": tainted.Seconds(), "worker_pods_moved_s": moved.Seconds(), "worker_back_s": back.Seconds()})
}

func retireNode(t *testing.T, d *necodc.DC) {
	h := hosts{t, d.In, 2 * time.Minute}
	boot0 := d.BootServers()[0]
	_, workers := clusterNodes(t, d)
	victimAddr := workers[len(workers)-1]
	victim := nodeName(d, victimAddr)
	serial := d.Plan.Hosts[victim].Serial
	start := time.Now()
	h.must(boot0, "sabactl", "machines", "set-state", serial, "retiring")
	drained := waitTaint(t, d, victimAddr, "cke.cybozu.com/state=retiring:NoExecute", 3*time.Minute)
	waitServing(t, d, 4*time.Minute, victimAddr)
	h.must(boot0, "sabactl", "machines", "set-state", serial, "retired")
	waitNode(t, d, victimAddr, true, 4*time.Minute)
	removed := time.Since(start)
	if _, workers := clusterNodes(t, d); slices.Contains(workers, victimAddr) {
		t.Errorf("retired %s is still in cluster.yml", victimAddr)
	}
	t.Logf("%s retiring: tainted NoExecute after %s; retired: removed from the cluster %s after retiring", victim, drained.Round(100*time.Millisecond), removed.Round(time.Second))
	report(t, map[string]any{"retiring_tainted_s": drained.Seconds(), "retired_removed_s": removed.Seconds()})
}

// dumpKubernetes logs what the engine and the cluster say, for a failure.
func dumpKubernetes(t *testing.T, d *necodc.DC) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	boot0 := d.BootServers()[0]
	for _, argv := range [][]string{{"ckecli", "status"}, {"ckecli", "history", "-n", "15"}, {"ckecli", "cluster", "get"},
		{"journalctl", "-u", "cke", "-n", "40", "--no-pager"}} {
		out, _ := d.In.Run(ctx, boot0, argv...)
		t.Logf("--- %s ---\n%s", strings.Join(argv, " "), out)
	}
	out, _ := d.Kubectl(ctx, "get", "nodes,pods", "-A", "-o", "wide")
	t.Logf("--- kubectl get nodes,pods -A ---\n%s", out)
}

// waitRolled waits until cluster.yml has the API servers' flag and every
// control plane's API server was restarted since start, each by an
// operation of its own (one at a time), and the engine is idle. It
// returns when the last restart ended.
func waitRolled(t *testing.T, d *necodc.DC, flag string, start time.Time, limit time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	boot0 := d.BootServers()[0]
	var last time.Time
	var restarted map[string]bool
	err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		out, err := d.In.Run(ctx, boot0, "ckecli", "cluster", "get", "-o", "json")
		if err != nil || !strings.Contains(out, flag) {
			return false
		}
		cps, _ := clusterNodes(t, d)
		out, err = d.In.Run(ctx, boot0, "ckecli", "history", "-n", "200", "-o", "json")
		if err != nil {
			return false
		}
		var recs []struct {
			Status string    `json:"status"`
			Start  time.Time `json:"start"`
			End    time.Time `json:"end"`
			Op     struct {
				Kind    string   `json:"kind"`
				Service string   `json:"service"`
				Nodes   []string `json:"nodes"`
			} `json:"op"`
		}
		if json.Unmarshal([]byte(out), &recs) != nil {
			return false
		}
		restarted = map[string]bool{}
		for _, r := range recs {
			if r.Start.Before(start) || r.Op.Kind != "start-service" || r.Op.Service != "kube-apiserver" || r.Status != "completed" {
				continue
			}
			if len(r.Op.Nodes) != 1 {
				t.Errorf("API servers restarted together: %v", r.Op.Nodes)
			}
			for _, n := range r.Op.Nodes {
				restarted[n] = true
			}
			if r.End.After(last) {
				last = r.End
			}
		}
		for _, cp := range cps {
			if !restarted[cp] {
				return false
			}
		}
		return engineIdle(ctx, d)
	})
	if err != nil {
		dumpKubernetes(t, d)
		t.Fatalf("the API servers not rolled with %s after %s (restarted: %v)", flag, limit, restarted)
	}
	return last
}
