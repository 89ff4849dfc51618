//go:build dctest

package dctest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// podSubnet is the default pool of etc/cke-template.yml.
var podSubnet = netip.MustParsePrefix("10.64.0.0/14")

type podNet struct {
	Name, Node, IP string
	Ready          bool
	Created        time.Time
	ReadyAt        time.Time
}

func listPods(ctx context.Context, d *necodc.DC, selector string) ([]podNet, error) {
	out, err := d.Kubectl(ctx, "get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string    `json:"name"`
				CreationTimestamp time.Time `json:"creationTimestamp"`
				DeletionTimestamp *string   `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP      string `json:"podIP"`
				Conditions []struct {
					Type, Status       string
					LastTransitionTime time.Time
				}
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var pods []podNet
	for _, it := range list.Items {
		if it.Metadata.DeletionTimestamp != nil {
			continue
		}
		p := podNet{Name: it.Metadata.Name, Node: it.Spec.NodeName, IP: it.Status.PodIP, Created: it.Metadata.CreationTimestamp}
		for _, c := range it.Status.Conditions {
			// The sandbox has its network: the pod network's share of
			// the start (the containers' is the runtime's).
			if c.Type == "PodReadyToStartContainers" && c.Status == "True" {
				p.ReadyAt = c.LastTransitionTime
			}
			if c.Type == "Ready" {
				p.Ready = c.Status == "True"
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func waitPods(t *testing.T, d *necodc.DC, selector string, n int, limit time.Duration) []podNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var pods []podNet
	err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		var err error
		if pods, err = listPods(ctx, d, selector); err != nil || len(pods) != n {
			return false
		}
		for _, p := range pods {
			if !p.Ready || p.IP == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		dumpKubernetes(t, d)
		dumpNotReady(t, d, pods)
		t.Fatalf("pods %s: not %d Ready after %s: %+v", selector, n, limit, pods)
	}
	return pods
}

// dumpNotReady logs what explains pods that are not Ready: their events
// and their nodes' pod network and kubelet logs.
func dumpNotReady(t *testing.T, d *necodc.DC, pods []podNet) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := map[string]bool{}
	for _, p := range pods {
		if p.Ready {
			continue
		}
		out, _ := d.Kubectl(ctx, "describe", "pod", p.Name)
		t.Logf("--- kubectl describe pod %s ---\n%s", p.Name, out)
		if p.Node != "" {
			nodes[p.Node] = true
		}
	}
	for node := range nodes {
		host := nodeName(d, node)
		out, _ := d.In.Run(ctx, host, "sh", "-c", "systemctl status --no-pager cke-podnet; journalctl --no-pager -o short-precise -n 40 -u cke-podnet; journalctl --no-pager -o short-precise -n 30 -u cke-kubelet; ls -l /etc/cni/net.d /usr/lib/cni/podnet /run/podnet.sock")
		t.Logf("--- %s (%s) ---\n%s", host, node, out)
	}
}

// TestPodNetwork checks the routed pod network (podnet) of the data
// center's cluster: addresses from the default pool, pods in three racks
// reaching each other and the boot servers over the fabric with no
// encapsulation, a ClusterIP and a NodePort Service, cluster DNS, 100 pods
// on one node and the withdrawal of their routes, and pod traffic across a
// ToR's failure.
func TestPodNetwork(t *testing.T) {
	d := necoDC(t)
	ctx := context.Background()
	h := hosts{t, d.In, 2 * time.Minute}
	boot0 := d.BootServers()[0]
	ensureKubernetes(t, d)

	if out, err := d.Apply(ctx, "pods", necodc.PodsManifest); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pods := waitPods(t, d, "app=pods", 3, 5*time.Minute)
	racks := map[uint]bool{}
	for _, p := range pods {
		a, err := netip.ParseAddr(p.IP)
		if err != nil || !podSubnet.Contains(a) {
			t.Errorf("pod %s has address %q, not in %s", p.Name, p.IP, podSubnet)
		}
		racks[d.Plan.Hosts[nodeName(d, p.Node)].Rack] = true
	}
	// One per rack that has a node to take it: after TestKubernetes a
	// rack may have lost its worker (retired, or a control plane moved).
	if want := schedulableRacks(t, d); len(racks) != want || want < 2 {
		t.Errorf("pods in racks %v, want one in each of the %d racks with a schedulable node (at least two)", racks, want)
	}

	t.Run("pods in different racks reach each other", func(t *testing.T) {
		for _, a := range pods {
			for _, b := range pods {
				if a == b {
					continue
				}
				// boot-0 asks pod a to ask pod b its host name.
				url := fmt.Sprintf("http://%s:8080/dial?request=hostname&protocol=http&host=%s&port=8080&tries=1", a.IP, b.IP)
				out := h.must(boot0, "curl", "-sf", "--max-time", "10", url)
				if !strings.Contains(out, `"`+b.Name+`"`) {
					t.Errorf("%s → %s: %s", a.Name, b.Name, out)
				}
			}
		}
	})

	t.Run("routed over the fabric without encapsulation", func(t *testing.T) {
		a, b := crossRack(d, pods)
		an := nodeName(d, a.Node)
		// Pod b's block is a BGP route on a's node, through both ToRs.
		route := h.must(an, "ip", "route", "get", b.IP)
		if !strings.Contains(route, " via ") || strings.Contains(route, "dev lo") {
			t.Errorf("route from %s to pod %s: %s", an, b.IP, route)
		}
		// (-o: one line per route; the default route also matches.)
		blockRoute := "ip -o route show match " + b.IP + " | grep -v ^default || true"
		table := h.must(an, "sh", "-c", blockRoute)
		if !strings.Contains(table, "/27 proto bird") || strings.Count(table, "nexthop") != 2 {
			t.Errorf("%s's route to pod %s is not a BGP route of its block over two ToRs:\n%s", an, b.IP, table)
		}
		// The ToRs carry it; the node has no tunnel.
		tor := fmt.Sprintf("rack%d-tor1", d.Plan.Hosts[an].Rack)
		if out := h.must(tor, "sh", "-c", blockRoute); !strings.Contains(out, "/27 proto bird") {
			t.Errorf("%s has no BGP route to pod %s's block:\n%s", tor, b.IP, out)
		}
		if out := h.must(an, "ip", "-d", "link"); strings.Contains(out, "ipip") || strings.Contains(out, "vxlan") || strings.Contains(out, "gre") {
			t.Errorf("%s has a tunnel:\n%s", an, out)
		}
		// The pod's link has the uplinks' MTU.
		ns := podNetns(t, d, an, a.IP)
		podMTU := strings.TrimSpace(h.must(an, "ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/mtu"))
		upMTU := strings.TrimSpace(h.must(an, "sh", "-c", "ip -o route get "+b.IP+" | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | xargs -I{} cat /sys/class/net/{}/mtu"))
		if podMTU != upMTU {
			t.Errorf("pod MTU %s, uplink MTU %s", podMTU, upMTU)
		}
		// A node's own block routes are in table 119, one per block.
		if out := h.must(an, "ip", "route", "show", "table", "119"); !strings.Contains(out, "dev lo proto 30") {
			t.Errorf("%s's table 119:\n%s", an, out)
		}
	})

	t.Run("Services and DNS", func(t *testing.T) {
		names := map[string]bool{}
		for _, p := range pods {
			names[p.Name] = true
		}
		a := pods[0]
		for _, host := range []string{"pods", "pods.default.svc.cluster.local"} {
			url := fmt.Sprintf("http://%s:8080/dial?request=hostname&protocol=http&host=%s&port=80&tries=6", a.IP, host)
			var got struct {
				Responses []string `json:"responses"`
				Errors    []string `json:"errors"`
			}
			out := h.must(boot0, "curl", "-sf", "--max-time", "30", url)
			if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Responses) == 0 {
				t.Errorf("%s through the Service %s: %s", a.Name, host, out)
			}
			for _, r := range got.Responses {
				if !names[r] {
					t.Errorf("the Service %s answered %q, not one of the pods", host, r)
				}
			}
		}
		if out, err := d.Kubectl(ctx, "exec", a.Name, "--", "/agnhost", "connect", "--timeout=5s", "kubernetes.default.svc.cluster.local:443"); err != nil {
			t.Errorf("kubernetes.default from a pod: %v\n%s", err, out)
		}
		// The NodePort answers on every node, from boot-0.
		_, workers := clusterNodes(t, d)
		for _, n := range workers {
			out := strings.TrimSpace(h.must(boot0, "curl", "-sf", "--max-time", "10", "http://"+n+":30080/hostname"))
			if !names[out] {
				t.Errorf("NodePort on %s answered %q", n, out)
			}
		}
	})

	t.Run("pod-to-pod throughput across racks", func(t *testing.T) { podThroughput(t, d, pods) })
	t.Run("100 pods on one node", func(t *testing.T) { crowd(t, d) })
	t.Run("pod traffic survives a ToR failure", func(t *testing.T) { podsTorDown(t, d, pods) })
}

// schedulableRacks counts the racks with a Ready node that has no
// NoSchedule or NoExecute taint.
func schedulableRacks(t *testing.T, d *necodc.DC) int {
	t.Helper()
	nodes, err := d.KubeNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	racks := map[uint]bool{}
	for _, n := range nodes {
		tainted := slices.ContainsFunc(n.Taints, func(s string) bool {
			return strings.HasSuffix(s, ":NoSchedule") || strings.HasSuffix(s, ":NoExecute")
		})
		if n.Ready && !tainted {
			racks[d.Plan.Hosts[nodeName(d, n.Name)].Rack] = true
		}
	}
	return len(racks)
}

// ensureKubernetes makes sure the shared data center runs the cluster.
func ensureKubernetes(t *testing.T, d *necodc.DC) {
	t.Helper()
	ctx := context.Background()
	out, err := d.In.Run(ctx, d.BootServers()[0], "ckecli", "sabakan", "show", "-o", "json")
	var view struct {
		Enabled bool `json:"enabled"`
	}
	if err != nil || json.Unmarshal([]byte(out), &view) != nil {
		t.Fatalf("ckecli sabakan show: %v\n%s", err, out)
	}
	if !view.Enabled {
		if err := d.EnableKubernetes(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	want, err := d.KubernetesMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WaitKubernetes(ctx, len(want), 12*time.Minute); err != nil {
		dumpKubernetes(t, d)
		t.Fatal(err)
	}
}

// podNetns is the name of the network namespace of the pod with address
// ip on machine host.
func podNetns(t *testing.T, d *necodc.DC, host, ip string) string {
	t.Helper()
	h := hosts{t, d.In, time.Minute}
	out := h.must(host, "sh", "-c", `for n in $(ip netns list | cut -d' ' -f1); do ip -n $n -4 -o addr | grep -q " $1/" && echo $n; done; true`, "sh", ip)
	ns := strings.TrimSpace(out)
	if ns == "" || strings.Contains(ns, "\n") {
		t.Fatalf("pod %s's network namespace on %s: %q", ip, host, ns)
	}
	return ns
}

func crowdManifest(node string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: crowd, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: crowd}}
  template:
    metadata: {labels: {app: crowd}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %q}
      terminationGracePeriodSeconds: 0
      containers:
      - name: pause
        image: %s
        resources: {requests: {cpu: 1m, memory: 1Mi}}
`, replicas, node, images.PauseName)
}

// crowd runs 100 pods on one worker at once: each gets an address of its
// own from the node's blocks; deleted, their blocks' routes are withdrawn
// from the node and the fabric.
func crowd(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	h := hosts{t, d.In, 2 * time.Minute}
	_, workers := clusterNodes(t, d)
	node := workers[len(workers)-1]
	host := nodeName(d, node)
	before := exportTable(h, host)
	if out, err := d.Apply(ctx, "crowd", crowdManifest(node, 100)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := time.Now()
	pods := waitPods(t, d, "app=crowd", 100, 10*time.Minute)
	all := time.Since(start)
	seen := map[string]bool{}
	var lat []time.Duration
	for _, p := range pods {
		if seen[p.IP] {
			t.Errorf("address %s handed out twice", p.IP)
		}
		seen[p.IP] = true
		if !p.ReadyAt.IsZero() {
			lat = append(lat, p.ReadyAt.Sub(p.Created))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		t.Fatal("no pod reports PodReadyToStartContainers")
	}
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	// The daemon's own share: its log line of each ADD says how long it
	// took (address, block claim if any, links and routes).
	var adds []float64
	logs := h.must(host, "journalctl", "-u", "cke-podnet", "-o", "cat", "--since", "@"+strconv.FormatInt(start.Unix()-1, 10))
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, `"podnet: ADD"`) || !strings.Contains(l, `pod="default/crowd-`) {
			continue
		}
		if _, sec, ok := strings.Cut(l, "seconds="); ok {
			if v, err := strconv.ParseFloat(strings.Fields(sec)[0], 64); err == nil {
				adds = append(adds, v)
			}
		}
	}
	slices.Sort(adds)
	if len(adds) < 100 {
		t.Errorf("%d ADDs of the crowd in the daemon's log, want 100", len(adds))
		adds = append(adds, 0)
	}
	add50, add99 := adds[len(adds)/2], adds[len(adds)*99/100]
	blocks := exportTable(h, host)
	t.Logf("100 pods on %s Ready in %s; creation to network ready p50 %s, p99 %s; podnet's ADD p50 %.0f ms, p99 %.0f ms; %d blocks in table 119",
		host, all.Round(time.Second), p50, p99, add50*1000, add99*1000, len(blocks))
	if len(blocks) < 4 {
		t.Errorf("100 pods in %d blocks of 32", len(blocks))
	}

	// Deleted: the blocks the crowd took are freed and their routes go.
	tor := fmt.Sprintf("rack%d-tor1", d.Plan.Hosts[host].Rack)
	var added []string
	for _, b := range blocks {
		if !slices.Contains(before, b) {
			added = append(added, b)
		}
	}
	del := time.Now()
	if out, err := d.Kubectl(ctx, "delete", "deployment", "crowd", "--wait=false"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var local, fabric time.Duration
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err := proc.WaitFor(wctx, 500*time.Millisecond, func() bool {
		now := exportTable(h, host)
		if local == 0 && !overlaps(now, added) {
			local = time.Since(del)
		}
		if local == 0 {
			return false
		}
		out, err := d.In.Run(wctx, tor, "ip", "route")
		if err != nil {
			return false
		}
		for _, b := range added {
			if strings.Contains(out, b+" ") {
				return false
			}
		}
		fabric = time.Since(del)
		return true
	})
	if err != nil {
		t.Fatalf("the crowd's blocks %v still routed after 5 min (node: %v)", added, exportTable(h, host))
	}
	t.Logf("deleted: blocks gone from %s's table 119 %s and from %s %s after kubectl delete", host, local.Round(100*time.Millisecond), tor, fabric.Round(100*time.Millisecond))
	report(t, map[string]any{"crowd_pods": 100, "crowd_ready_s": all.Seconds(), "pod_network_ready_p50_s": p50.Seconds(),
		"pod_network_ready_p99_s": p99.Seconds(), "add_p50_ms": add50 * 1000, "add_p99_ms": add99 * 1000, "crowd_blocks": len(blocks), "withdrawn_node_s": local.Seconds(), "withdrawn_tor_s": fabric.Seconds()})
}

func exportTable(h hosts, host string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(h.must(host, "ip", "route", "show", "table", "119")), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// podsTorDown pings, from inside the pods of the other racks, the first
// pod every 20 ms while every link of its rack's first ToR goes down: the
// longest gap is the pod network's outage.
func podsTorDown(t *testing.T, d *necodc.DC, pods []podNet) {
	const interval, probeFor = 20 * time.Millisecond, 8 * time.Second
	ctx := context.Background()
	rackOf := func(p podNet) uint { return d.Plan.Hosts[nodeName(d, p.Node)].Rack }
	target := pods[0]
	var sources []podNet
	for _, p := range pods {
		if rackOf(p) != rackOf(target) {
			sources = append(sources, p)
		}
	}
	if len(sources) == 0 {
		t.Fatalf("no pod outside rack %d: %+v", rackOf(target), pods)
	}
	tor := fmt.Sprintf("rack%d-tor1", rackOf(target))
	type result struct {
		src, out string
		err      error
	}
	results := make(chan result, len(sources))
	for _, src := range sources {
		host := nodeName(d, src.Node)
		ns := podNetns(t, d, host, src.IP)
		script := fmt.Sprintf(`ip netns exec %s ping -q -i %.3f -w %d %s | sed -n "s/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p"`,
			ns, interval.Seconds(), int(probeFor.Seconds()), target.IP)
		argv, err := d.In.ExecArgs(host, []string{"sh", "-c", script})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			results <- result{src.Name, string(out), err}
		}()
	}
	time.Sleep(2 * time.Second)
	const allLinks = `for l in /sys/class/net/*; do [ ${l##*/} = lo ] || ip link set ${l##*/} %s; done`
	if _, err := d.In.Run(ctx, tor, "sh", "-c", fmt.Sprintf(allLinks, "down")); err != nil {
		t.Fatal(err)
	}
	defer d.In.Run(ctx, tor, "sh", "-c", fmt.Sprintf(allLinks, "up"))
	var worst time.Duration
	for range sources {
		r := <-results
		var sent, got int
		if _, err := fmt.Sscan(r.out, &sent, &got); r.err != nil || err != nil {
			t.Errorf("probe from %s: %v %v: %s", r.src, r.err, err, r.out)
			continue
		}
		if got == 0 || sent-got > int(probeFor/interval)/2 {
			t.Errorf("pod %s → %s lost: %d of %d answered", r.src, target.Name, got, sent)
		}
		worst = max(worst, time.Duration(sent-got)*interval)
	}
	t.Logf("%s down: pod traffic from the other racks to rack %d lost at most %s", tor, rackOf(target), worst)
	if _, err := d.In.Run(ctx, tor, "sh", "-c", fmt.Sprintf(allLinks, "up")); err != nil {
		t.Fatal(err)
	}
	want := 2 * len(d.Plan.Hosts)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, 100*time.Millisecond, func() bool {
		n, err := d.NodeSessions(wctx)
		return err == nil && n == want
	}); err != nil {
		t.Fatalf("machine sessions not back after the ToR's repair: %v", err)
	}
	report(t, map[string]any{"pod_tor_down_worst_ms": worst.Milliseconds()})
}

// machineNetns is the network namespace file of nspawn machine host and,
// with a pod's namespace name, of that pod (seen from this machine, through
// the machine's root).
func machineNetns(t *testing.T, d *necodc.DC, host, podNS string) string {
	t.Helper()
	for _, hi := range d.In.Hosts() {
		if hi.Name != host || len(hi.Apps) == 0 {
			continue
		}
		leader, err := nspawn.Leader(hi.Apps[0].PID)
		if err != nil {
			t.Fatal(err)
		}
		if podNS == "" {
			return fmt.Sprintf("/proc/%d/ns/net", leader)
		}
		return fmt.Sprintf("/proc/%d/root/run/netns/%s", leader, podNS)
	}
	t.Fatalf("no running machine %s", host)
	return ""
}

// tcpThroughput streams for dur over one TCP connection from network
// namespace src to a listener at addr in dst, and returns what arrived,
// in bytes per second.
func tcpThroughput(src, dst string, addr netip.Addr, dur time.Duration) (float64, error) {
	var ln net.Listener
	if err := testutil.InNetns(dst, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	type got struct {
		n   int64
		d   time.Duration
		err error
	}
	recv := make(chan got, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recv <- got{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		recv <- got{n, time.Since(start), err}
	}()
	var c net.Conn
	if err := testutil.InNetns(src, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	r := <-recv
	if r.err != nil {
		return 0, r.err
	}
	return float64(r.n) / r.d.Seconds(), nil
}

// crossRack returns the first pod and the first other pod in another
// rack. With a rack short of a schedulable node, two of the three pods
// share a rack (and a ToR reaches its own rack's blocks through the node,
// not the spines).
func crossRack(d *necodc.DC, pods []podNet) (a, b podNet) {
	a, b = pods[0], pods[1]
	rack := d.Plan.Hosts[nodeName(d, a.Node)].Rack
	for _, p := range pods[1:] {
		if d.Plan.Hosts[nodeName(d, p.Node)].Rack != rack {
			return a, p
		}
	}
	return a, b
}

// podThroughput compares TCP throughput between two pods in different
// racks with that between their two nodes, alternating five rounds of 3 s
// each (medians; the machine is shared by the whole data center).
func podThroughput(t *testing.T, d *necodc.DC, pods []podNet) {
	a, b := crossRack(d, pods)
	ha, hb := nodeName(d, a.Node), nodeName(d, b.Node)
	podA := machineNetns(t, d, ha, podNetns(t, d, ha, a.IP))
	podB := machineNetns(t, d, hb, podNetns(t, d, hb, b.IP))
	nodeA, nodeB := machineNetns(t, d, ha, ""), machineNetns(t, d, hb, "")
	var node, pod []float64
	for range 5 {
		n, err := tcpThroughput(nodeA, nodeB, netip.MustParseAddr(b.Node), 3*time.Second)
		if err != nil {
			t.Fatalf("node %s → node %s: %v", ha, hb, err)
		}
		p, err := tcpThroughput(podA, podB, netip.MustParseAddr(b.IP), 3*time.Second)
		if err != nil {
			t.Fatalf("pod %s → pod %s: %v", a.Name, b.Name, err)
		}
		node, pod = append(node, n), append(pod, p)
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	ratio := med(pod) / med(node)
	t.Logf("TCP %s → %s (racks %d → %d): node to node median %.0f MB/s, pod to pod %.0f MB/s, ratio %.2f (rounds node %v, pod %v)",
		ha, hb, d.Plan.Hosts[ha].Rack, d.Plan.Hosts[hb].Rack, med(node)/1e6, med(pod)/1e6, ratio, mbps(node), mbps(pod))
	report(t, map[string]any{"node_to_node_MBps": med(node) / 1e6, "pod_to_pod_MBps": med(pod) / 1e6, "pod_node_ratio": ratio})
}

func mbps(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x / 1e6)
	}
	return out
}
