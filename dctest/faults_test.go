//go:build dctest

package dctest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestNetworkFaults breaks the fabric and measures how fast the ToRs
// notice, in two ways:
//
//   - uplink: spine1 loses its link to the core. It withdraws the default
//     route from the ToRs, which must drop to one default path at once.
//   - dead spine: every link of spine1 goes silent, ToR-facing ones first so
//     that no withdrawal gets out. The ToRs' links stay up (a bridge sits in
//     between), so only BFD (400 ms × 5) can tell.
//
// After each repair, ECMP must come back.
//
// Then a ToR dies (rack0-tor1, all links silent) while machines of racks 1
// and 2 ping machines of rack 0 from node0 to node0 every 20 ms: every flow
// must survive, and the outage each sees (lost probes × 20 ms) is measured.
//
// Still to come with the boot side: a boot server down with DHCP and HTTP
// boot still served, etcd keeping quorum.
func TestNetworkFaults(t *testing.T) {
	m := menu.Default()
	m.QEMUNodes = 0
	m.Agent = true
	d := newDC(t, m)

	var tors []string
	for _, r := range d.plan.Routers {
		if r.Role == menu.RoleToR {
			tors = append(tors, r.Name)
		}
	}
	paths := func(tor string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := d.in.Run(ctx, tor, "ip", "route", "show", "default")
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
		d.run("spine1", "sh", "-c", script)
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
	if out := d.run("spine1", "ip", "-o", "-4", "addr", "show", "dev", "core"); !strings.Contains(out, "/31") {
		t.Fatalf("spine1 has no core link: %s", out)
	}
	const torLinks = `for l in /sys/class/net/*; do case ${l##*/} in lo|core) ;; *) ip link set ${l##*/} %s;; esac; done`

	uplink := fault("ip link set core down", 1, 30*time.Second)
	uplinkBack := fault("ip link set core up", m.Spines, 60*time.Second)

	dead := fault(fmt.Sprintf(torLinks, "down")+"; ip link set core down", 1, 30*time.Second)
	// The machines still reach their ToRs: only the fabric above degraded.
	for _, r := range d.plan.Routers {
		if r.Name == "rack1-tor1" && !d.ping("rack1-cs1", r.NodeAddress.String()) {
			t.Error("rack1-cs1 lost rack1-tor1 while spine1 was down")
		}
	}
	deadBack := fault("ip link set core up; "+fmt.Sprintf(torLinks, "up"), m.Spines, 60*time.Second)

	t.Logf("spine1 uplink down: all %d ToRs on one path after %s (BGP withdraw), ECMP back %s after repair",
		len(tors), uplink.Round(10*time.Millisecond), uplinkBack.Round(10*time.Millisecond))
	t.Logf("spine1 dead: all %d ToRs on one path after %s (BFD), ECMP back %s after repair",
		len(tors), dead.Round(10*time.Millisecond), deadBack.Round(10*time.Millisecond))
	if dead < time.Second {
		t.Errorf("a silent spine was noticed after %s: faster than BFD can, so something else told the ToRs", dead)
	}
	worst, hit, flows, torBack := torDown(t, d)
	t.Logf("rack0-tor1 dead: %d of %d node0 flows saw an outage, the worst %s; all %d node sessions back %s after repair",
		hit, flows, worst, 2*len(d.plan.Cluster.NspawnNodes), torBack.Round(10*time.Millisecond))
	report(t, map[string]any{"uplink_withdraw_s": uplink.Seconds(), "uplink_recovery_s": uplinkBack.Seconds(),
		"spine_dead_bfd_s": dead.Seconds(), "spine_dead_recovery_s": deadBack.Seconds(),
		"tor_dead_worst_outage_s": worst.Seconds(), "tor_dead_flows_hit": hit, "tor_dead_flows": flows,
		"tor_recovery_s": torBack.Seconds()})
}

// torDown kills rack0-tor1 while node0-to-node0 probes run from racks 1
// and 2 to rack 0, and returns the worst outage, how many flows had one,
// the number of flows, and how long the node sessions took to come back
// after repair.
func torDown(t *testing.T, d *dc) (worst time.Duration, hit, flows int, back time.Duration) {
	const interval, probeFor = 20 * time.Millisecond, 8 * time.Second
	var targets []string
	var sources []string
	for _, n := range d.plan.Cluster.NspawnNodes {
		hp := d.plan.Hosts[n.Name]
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
			strings.Join(targets, " "), interval.Seconds(), int(probeFor.Seconds()), d.plan.Hosts[src].Node0)
		argv, err := d.in.ExecArgs(src, []string{"sh", "-c", script})
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
	d.run("rack0-tor1", "sh", "-c", fmt.Sprintf(allLinks, "down"))
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
	d.run("rack0-tor1", "sh", "-c", fmt.Sprintf(allLinks, "up"))
	want := 2 * len(d.plan.Cluster.NspawnNodes)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := proc.WaitFor(ctx, 100*time.Millisecond, func() bool {
		s, err := d.in.BGPSessions(ctx)
		return err == nil && nodeSessions(s) == want
	}); err != nil {
		t.Fatalf("node sessions not back after the ToR's repair: %v", err)
	}
	return worst, hit, flows, time.Since(start)
}
