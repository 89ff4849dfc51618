//go:build dctest

package dctest

import (
	"context"
	"fmt"
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
// Still to come with the BGP agent and the boot side: a ToR down with every
// node0 reachable, a boot server down with DHCP and HTTP boot still served.
func TestNetworkFaults(t *testing.T) {
	m := menu.Default()
	m.QEMUNodes = 0
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
	report(t, map[string]any{"uplink_withdraw_s": uplink.Seconds(), "uplink_recovery_s": uplinkBack.Seconds(),
		"spine_dead_bfd_s": dead.Seconds(), "spine_dead_recovery_s": deadBack.Seconds()})
}
