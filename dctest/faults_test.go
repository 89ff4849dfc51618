//go:build dctest

package dctest

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestNetworkFaults breaks the bootstrapped data center and measures how
// it copes.
//
// The fabric, timed on the ToRs:
//
//   - uplink: spine1 loses its link to the core. It withdraws the default
//     route from the ToRs, which must drop to one default path at once.
//   - dead spine: every link of spine1 goes silent, ToR-facing ones first so
//     that no withdrawal gets out. The ToRs' links stay up (a bridge sits in
//     between), so only BFD (400 ms × 5) can tell.
//   - dead ToR: rack0-tor1 goes silent while every machine of racks 1 and 2
//     pings every machine of rack 0, node0 to node0, every 20 ms: no flow
//     may be lost; the outage each sees (lost probes × 20 ms) is measured.
//
// After each repair ECMP (or every machine session) must come back.
//
// A boot server (boot-1) loses its power: etcd keeps its quorum and takes
// writes, sabakan on the other two keeps answering and writing, a machine
// of rack 1 that boots meanwhile gets its DHCP lease and its identity from
// the other racks' boot servers through the ToR relay, and sabakan marks the
// dead boot server unreachable. Powered on again, it rejoins: etcd, Vault
// (after neco vault unseal), sabakan, healthy.
func TestNetworkFaults(t *testing.T) {
	d := necoDC(t)
	t.Run("fabric", func(t *testing.T) { fabricFaults(t, d) })
	t.Run("boot server down", func(t *testing.T) { bootServerDown(t, d) })
}

func fabricFaults(t *testing.T, d *necodc.DC) {
	m := d.Plan.Menu
	run := hosts{t, d.In, 30 * time.Second}.must
	var tors []string
	for _, r := range d.Plan.Routers {
		if r.Role == menu.RoleToR {
			tors = append(tors, r.Name)
		}
	}
	paths := func(tor string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := d.In.Run(ctx, tor, "ip", "route", "show", "default")
		if err != nil {
			return -1
		}
		if n := strings.Count(out, "nexthop via"); n > 0 {
			return n
		}
		if strings.HasPrefix(out, "default via") {
			return 1
		}
		return 0
	}
	// fault runs script in spine1 and returns how long until every ToR has
	// want default paths, timed from just before the script.
	fault := func(script string, want int, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		run("spine1", "sh", "-c", script)
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		err := proc.WaitFor(ctx, 50*time.Millisecond, func() bool {
			for _, tor := range tors {
				if paths(tor) != want {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("after %q the ToRs do not all have %d default paths: %v", script, want, err)
		}
		return time.Since(start)
	}
	// spine1's link to the core is its interface "core" (pkg/bgp/routers
	// names interfaces after the peer); the others face the ToRs.
	if out := run("spine1", "ip", "-o", "-4", "addr", "show", "dev", "core"); !strings.Contains(out, "/31") {
		t.Fatalf("spine1 has no core link: %s", out)
	}
	const torLinks = `for l in /sys/class/net/*; do case ${l##*/} in lo|core) ;; *) ip link set ${l##*/} %s;; esac; done`

	uplink := fault("ip link set core down", 1, 30*time.Second)
	uplinkBack := fault("ip link set core up", m.Spines, 60*time.Second)

	dead := fault(fmt.Sprintf(torLinks, "down")+"; ip link set core down", 1, 30*time.Second)
	deadBack := fault("ip link set core up; "+fmt.Sprintf(torLinks, "up"), m.Spines, 60*time.Second)

	t.Logf("spine1 uplink down: all %d ToRs on one path after %s (BGP withdraw), ECMP back %s after repair",
		len(tors), uplink.Round(10*time.Millisecond), uplinkBack.Round(10*time.Millisecond))
	t.Logf("spine1 dead: all %d ToRs on one path after %s (BFD), ECMP back %s after repair",
		len(tors), dead.Round(10*time.Millisecond), deadBack.Round(10*time.Millisecond))
	if dead < time.Second {
		t.Errorf("a silent spine was noticed after %s: faster than BFD can, so something else told the ToRs", dead)
	}
	worst, hit, flows, torBack := torDown(t, d)
	t.Logf("rack0-tor1 dead: %d of %d node0 flows saw an outage, the worst %s; all %d machine sessions back %s after repair",
		hit, flows, worst, 2*len(d.Plan.Hosts), torBack.Round(10*time.Millisecond))
	report(t, map[string]any{"uplink_withdraw_s": uplink.Seconds(), "uplink_recovery_s": uplinkBack.Seconds(),
		"spine_dead_bfd_s": dead.Seconds(), "spine_dead_recovery_s": deadBack.Seconds(),
		"tor_dead_worst_outage_s": worst.Seconds(), "tor_dead_flows_hit": hit, "tor_dead_flows": flows,
		"tor_recovery_s": torBack.Seconds()})
}

// torDown kills rack0-tor1 while node0-to-node0 probes run from racks 1
// and 2 to rack 0, and returns the worst outage, how many flows had one,
// the number of flows, and how long the machine sessions took to come back
// after repair.
func torDown(t *testing.T, d *necodc.DC) (worst time.Duration, hit, flows int, back time.Duration) {
	const interval, probeFor = 20 * time.Millisecond, 8 * time.Second
	var targets, sources []string
	for _, n := range d.Plan.Cluster.NspawnNodes {
		hp := d.Plan.Hosts[n.Name]
		if hp.Rack == 0 {
			targets = append(targets, hp.Node0.String())
		} else {
			sources = append(sources, n.Name)
		}
	}
	type result struct {
		out string
		err error
	}
	results := make(chan result, len(sources))
	for _, src := range sources {
		script := fmt.Sprintf(`for a in %s; do (ping -q -i %.3f -w %d -I %s $a | sed -n "s/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/$a \1 \2/p") & done; wait`,
			strings.Join(targets, " "), interval.Seconds(), int(probeFor.Seconds()), d.Plan.Hosts[src].Node0)
		argv, err := d.In.ExecArgs(src, []string{"sh", "-c", script})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			results <- result{string(out), err}
		}()
	}
	time.Sleep(2 * time.Second)
	const allLinks = `for l in /sys/class/net/*; do [ ${l##*/} = lo ] || ip link set ${l##*/} %s; done`
	ctx := context.Background()
	if _, err := d.In.Run(ctx, "rack0-tor1", "sh", "-c", fmt.Sprintf(allLinks, "down")); err != nil {
		t.Fatal(err)
	}
	for range sources {
		r := <-results
		if r.err != nil {
			t.Errorf("probe: %v: %s", r.err, r.out)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
			var dst string
			var sent, got int
			if _, err := fmt.Sscan(line, &dst, &sent, &got); err != nil {
				t.Errorf("probe output %q: %v", line, err)
				continue
			}
			flows++
			if got == 0 || sent-got > int(probeFor/interval)/2 {
				t.Errorf("flow to %s lost: %d of %d probes answered", dst, got, sent)
			}
			if lost := time.Duration(sent-got) * interval; lost > 0 {
				hit++
				worst = max(worst, lost)
			}
		}
	}
	if flows != len(sources)*len(targets) {
		t.Errorf("%d flows measured, want %d", flows, len(sources)*len(targets))
	}
	start := time.Now()
	if _, err := d.In.Run(ctx, "rack0-tor1", "sh", "-c", fmt.Sprintf(allLinks, "up")); err != nil {
		t.Fatal(err)
	}
	want := 2 * len(d.Plan.Hosts) // the QEMU machines' sessions too
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, 100*time.Millisecond, func() bool {
		n, err := d.NodeSessions(wctx)
		return err == nil && n == want
	}); err != nil {
		t.Fatalf("machine sessions not back after the ToR's repair: %v", err)
	}
	return worst, hit, flows, time.Since(start)
}

func bootServerDown(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	boots := d.BootServers()
	if len(boots) < 3 {
		testutil.Missing(t, "a data center with three boot servers (this one has %d)", len(boots))
	}
	victim, others := boots[1], []string{boots[0], boots[2]}
	vh := d.Plan.Hosts[victim]
	run := hosts{t, d.In, 30 * time.Second}.run
	var endpoints []string
	for _, b := range boots {
		endpoints = append(endpoints, "https://"+d.Plan.Hosts[b].Node0.String()+":2379")
	}
	etcdctl := func(host string, args ...string) (string, error) {
		return run(host, append([]string{"etcdctl", "--endpoints", strings.Join(endpoints, ","), "--dial-timeout", "2s",
			"--command-timeout", "5s", "--cacert", "/etc/neco/ca-server.crt", "--cert", "/etc/neco/etcd-root.crt",
			"--key", "/etc/neco/etcd-root.key"}, args...)...)
	}

	start := time.Now()
	if err := d.In.Stop(ctx, victim, true); err != nil {
		t.Fatal(err)
	}
	// etcd: two of three members keep a quorum and take writes (a new
	// leader first if the dead one led).
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var lastErr error
	if err := proc.WaitFor(wctx, 200*time.Millisecond, func() bool {
		_, lastErr = etcdctl(others[0], "put", "/dctest/probe", time.Now().String())
		return lastErr == nil
	}); err != nil {
		t.Fatalf("etcd takes no writes with %s down: %v", victim, lastErr)
	}
	etcdWrites := time.Since(start)
	out, _ := etcdctl(others[1], "endpoint", "health")
	if n := strings.Count(out, "is healthy"); n != 2 {
		t.Errorf("etcd: %d healthy endpoints with %s down, want 2:\n%s", n, victim, out)
	}
	// sabakan on the others answers and writes.
	for _, b := range others {
		if out, err := run(b, "sabactl", "machines", "get", "--serial", vh.Serial); err != nil || !strings.Contains(out, vh.Serial) {
			t.Errorf("%s: sabakan: %v %s", b, err, out)
		}
		if _, err := run(b, "sabactl", "kernel-params", "set", "console=ttyS0"); err != nil {
			t.Errorf("%s: sabakan write: %v", b, err)
		}
	}
	if err := d.WaitStates(ctx, sabakan.StateUnreachable, 2*time.Minute, victim); err != nil {
		t.Error(err)
	}
	deadSeen := time.Since(start)

	// A machine of the victim's rack boots: its rack's boot server is
	// gone, so its DHCP request is answered through the ToR's relay by
	// another rack's boot server, which also serves its identity and the
	// network boot files.
	var worker string
	for _, w := range d.Workers() {
		if d.Plan.Hosts[w].Rack == vh.Rack {
			worker = w
			break
		}
	}
	boot := time.Now()
	if err := d.In.Stop(ctx, worker, true); err != nil {
		t.Fatal(err)
	}
	if err := d.In.Start(ctx, worker); err != nil {
		t.Fatal(err)
	}
	wctx2, cancel2 := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel2()
	if err := proc.WaitFor(wctx2, time.Second, func() bool {
		_, err := run(worker, "curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:9770/health")
		return err == nil
	}); err != nil {
		out, _ := run(worker, "journalctl", "-u", "vdc-netboot", "-u", "bgp-node-agent", "--no-pager", "-n", "30")
		t.Fatalf("%s did not network-boot with %s down: %v\n%s", worker, victim, err, out)
	}
	netboot := time.Since(boot)
	leaseText, err := run(worker, "cat", "/run/vdc/lease")
	if err != nil {
		t.Fatal(err)
	}
	lease := parseEnv(leaseText)
	var servers []string
	for _, b := range others {
		servers = append(servers, d.Plan.Hosts[b].Node0.String())
	}
	if !slices.Contains(servers, lease["serverid"]) {
		t.Errorf("%s leased from %s, want one of the other boot servers %v (through the relay)", worker, lease["serverid"], servers)
	}
	ip, _ := netip.ParseAddr(lease["ip"])
	if rng, ok := sabakan.ReferenceIPAM().LeaseRange(netip.MustParseAddr(lease["router"])); !ok || !rng.Contains(ip) {
		t.Errorf("%s leased %s through relay %s: not that relay's range", worker, ip, lease["router"])
	}
	// The network boot files, from the server that answered.
	url := "http://" + lease["serverid"] + ":10080/api/v1/boot/"
	for _, p := range []string{"ipxe.efi", "coreos/ipxe/" + d.Plan.Hosts[worker].Serial, "coreos/kernel", "coreos/initrd.gz"} {
		if out, err := run(worker, "curl", "-sf", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url+p); err != nil || !strings.HasPrefix(out, "200 ") {
			t.Errorf("%s: GET %s: %v %s", worker, url+p, err, out)
		}
	}
	if err := d.WaitStates(ctx, sabakan.StateHealthy, 2*time.Minute, worker); err != nil {
		t.Error(err)
	}
	t.Logf("%s down: etcd took writes after %s, sabakan said unreachable after %s; %s network-booted through the relay from %s in %s",
		victim, etcdWrites.Round(100*time.Millisecond), deadSeen.Round(100*time.Millisecond), worker, lease["serverid"], netboot.Round(100*time.Millisecond))

	// Power back on: everything comes back by itself except Vault, which
	// starts sealed.
	back := time.Now()
	if err := d.In.Start(ctx, victim); err != nil {
		t.Fatal(err)
	}
	wctx3, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel3()
	if err := proc.WaitFor(wctx3, time.Second, func() bool {
		out, _ := etcdctl(others[0], "endpoint", "health")
		return strings.Count(out, "is healthy") == 3
	}); err != nil {
		t.Fatalf("%s's etcd did not rejoin: %v", victim, err)
	}
	if err := proc.WaitFor(wctx3, time.Second, func() bool {
		_, err := run(victim, "neco", "vault", "unseal")
		return err == nil
	}); err != nil {
		t.Fatalf("neco vault unseal on %s: %v", victim, err)
	}
	if err := proc.WaitFor(wctx3, time.Second, func() bool {
		out, _ := run(victim, "curl", "-sf", "http://127.0.0.1:10080/health")
		return strings.Contains(out, "healthy")
	}); err != nil {
		t.Errorf("sabakan on %s did not come back: %v", victim, err)
	}
	if err := d.WaitStates(ctx, sabakan.StateHealthy, 2*time.Minute, victim); err != nil {
		t.Error(err)
	}
	recovered := time.Since(back)
	t.Logf("%s powered on: etcd, Vault (unsealed), sabakan back and healthy after %s", victim, recovered.Round(100*time.Millisecond))
	report(t, map[string]any{"boot_down_etcd_writes_s": etcdWrites.Seconds(), "boot_down_unreachable_s": deadSeen.Seconds(),
		"boot_down_netboot_via_relay_s": netboot.Seconds(), "boot_back_s": recovered.Seconds()})
}
