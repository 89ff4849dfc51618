//go:build dctest

package dctest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestTopology brings up the default data center with the BGP node agent in
// every nspawn machine and checks what can run today: routers converge,
// machines boot, every machine peers with both ToRs of its rack and every
// node0 reaches every other over ECMP, ToRs relay DHCP, the QEMU machine
// starts network boot, nothing reaches the host's network, and teardown
// leaves nothing behind.
func TestTopology(t *testing.T) {
	m := menu.Default()
	m.Agent = true
	d := newDC(t, m)
	ctx := context.Background()

	// BGP: core↔each spine, each spine↔each ToR, counted from both ends.
	sessions, err := d.in.BGPSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tors := m.Racks * 2
	machines := len(d.plan.Cluster.NspawnNodes)
	if want := 2*m.Spines + 2*m.Spines*tors + 2*machines; len(sessions) != want {
		t.Errorf("%d BGP sessions, want %d: %+v", len(sessions), want, sessions)
	}

	// Every ToR has the core's default route over both spines (ECMP); the
	// core's is a blackhole, so nothing leaves the data center.
	for _, r := range d.plan.Routers {
		out := d.run(r.Name, "ip", "route", "show", "default")
		switch r.Role {
		case menu.RoleCore:
			if !strings.Contains(out, "blackhole") {
				t.Errorf("core default route = %q, want a blackhole", out)
			}
		case menu.RoleToR:
			if n := strings.Count(out, "nexthop via"); n != m.Spines {
				t.Errorf("%s default route has %d paths, want %d:\n%s", r.Name, n, m.Spines, out)
			}
		}
	}
	checkNoHostRoute(t)

	// Machines: full systems with their identity; the agent gave them
	// their planned addresses, node0, and ECMP routes over both ToRs.
	var node0s []string
	for _, n := range d.plan.Cluster.NspawnNodes {
		node0s = append(node0s, d.plan.Hosts[n.Name].Node0.String())
	}
	for _, n := range d.plan.Cluster.NspawnNodes {
		name, hp := n.Name, d.plan.Hosts[n.Name]
		out := d.run(name, "sh", "-c", "cat /proc/1/comm; hostname; cat /etc/vdc/serial")
		if want := "systemd\n" + name + "\n" + hp.Serial + "\n"; out != want {
			t.Errorf("%s: identity %q, want %q", name, out, want)
		}
		addrs := d.run(name, "ip", "-4", "-o", "addr")
		for _, a := range []string{hp.Node0.String() + "/32", hp.Eth0.String() + "/26", hp.Eth1.String() + "/26"} {
			if !strings.Contains(addrs, a) {
				t.Errorf("%s lacks %s:\n%s", name, a, addrs)
			}
		}
		if out := d.run(name, "ip", "route", "show", "default"); strings.Count(out, "nexthop via") != 2 {
			t.Errorf("%s default route is not ECMP over both ToRs:\n%s", name, out)
		}
		if out := d.run(name, "curl", "-sf", "http://127.0.0.1:9770/health"); !strings.Contains(out, "healthy") {
			t.Errorf("%s agent health: %s", name, out)
		}
		// node0 to every other node0, from node0.
		script := "for a in " + strings.Join(node0s, " ") + "; do ping -c1 -W2 -I " + hp.Node0.String() + " $a >/dev/null || echo $a; done"
		if out := d.run(name, "sh", "-c", script); strings.TrimSpace(out) != "" {
			t.Errorf("%s cannot reach node0 of: %s", name, strings.Fields(out))
		}
	}

	// Every ToR relays DHCP to every boot server.
	for _, r := range d.plan.Routers {
		if r.Role != menu.RoleToR {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(d.names.HostDir(r.Name), "dhcp-relay.log"))
		if n := strings.Count(string(b), "DHCP relay from "+r.NodeAddress.String()); n != m.Racks {
			t.Errorf("%s relays to %d boot servers, want %d:\n%s", r.Name, n, m.Racks, b)
		}
	}

	// The QEMU machine's UEFI firmware starts network boot.
	for _, n := range d.plan.Cluster.Nodes {
		logPath := filepath.Join(d.names.HostDir(n.Name), "console.log")
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := proc.WaitFor(wctx, time.Second, func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.Contains(string(b), "HTTP Boot over IPv4")
		})
		cancel()
		if err != nil {
			t.Errorf("%s: firmware did not start network boot: %v", n.Name, err)
		}
	}

	report(t, map[string]any{
		"racks": m.Racks, "spines": m.Spines, "nspawn": len(d.plan.Cluster.NspawnNodes), "qemu": len(d.plan.Cluster.Nodes),
		"create_s": d.created.Total.Seconds(), "rootfs_s": d.created.Rootfs.Seconds(),
		"boot_median_s": median(d.booted).Seconds(), "boot_max_s": maxOf(d.booted).Seconds(),
		"bgp_ready_s": d.bgpReady.Seconds(), "peak_pss_mib": d.peakPSS >> 20, "sessions": len(sessions), "agent": true,
	})
}
