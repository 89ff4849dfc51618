//go:build dctest

package dctest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestNetworkFaults breaks the fabric and measures how fast the routers
// notice. A spine whose links go down inside its namespace still looks up
// to the ToRs (a bridge sits between them), so only BFD can tell: every ToR
// must drop to a single default path, then get ECMP back after repair.
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
	var start time.Time
	waitAll := func(want int, limit time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		err := proc.WaitFor(ctx, 100*time.Millisecond, func() bool {
			for _, tor := range tors {
				if paths(tor) != want {
					return false
				}
			}
			return true
		})
		return time.Since(start), err
	}

	// All of spine1's links at once, timed from just before.
	setLinks := func(state string) {
		start = time.Now()
		d.run("spine1", "sh", "-c", "for l in /sys/class/net/eth*; do ip link set ${l##*/} "+state+"; done")
	}

	setLinks("down")
	down, err := waitAll(1, 30*time.Second)
	if err != nil {
		t.Fatalf("ToRs still use spine1 after its links went down: %v", err)
	}
	// The machines still reach their ToRs (only the fabric above is
	// degraded).
	for _, r := range d.plan.Routers {
		if r.Name == "rack1-tor1" && !d.ping("rack1-cs1", r.NodeAddress.String()) {
			t.Error("rack1-cs1 lost rack1-tor1 while spine1 was down")
		}
	}
	setLinks("up")
	up, err := waitAll(m.Spines, 60*time.Second)
	if err != nil {
		t.Fatalf("ECMP not restored after repair: %v", err)
	}
	t.Logf("spine1 down: all %d ToRs on one path after %s; ECMP back %s after repair", len(tors), down.Round(10*time.Millisecond), up.Round(10*time.Millisecond))
	report(t, map[string]any{"spine_failover_s": down.Seconds(), "spine_recovery_s": up.Seconds()})
}
