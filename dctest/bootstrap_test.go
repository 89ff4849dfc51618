//go:build dctest

package dctest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestBootstrap bootstraps neco on the default virtual data center and
// checks the result end to end:
//
//   - the release package (built from this tree like `make deb`) is
//     installed with dpkg in the three boot servers; `neco setup` on all
//     three brings up etcd and Vault; the first update request, run by the
//     CD workers, brings up sabakan everywhere; node-health-agent and the
//     state setter run;
//   - `neco init-data` loads IPAM, DHCP, an OS image, the BGP agent asset
//     and the Ignition templates; `sabactl machines create` the inventory;
//   - every worker takes a DHCP lease from sabakan, starts the BGP agent
//     with its identity from sabakan, peers with both ToRs; every node0
//     reaches every other; the QEMU machine UEFI-HTTP-boots the OS image,
//     fetches the Ignition sabakan rendered for it, runs the BGP node agent
//     from the asset it names (its node0 reachable from every machine) and
//     joins the serf cluster with node-health-agent;
//   - sabakan's states follow reality: every machine healthy, the QEMU
//     machine included, a worker whose power is cut unreachable, healthy
//     again after it boots.
func TestBootstrap(t *testing.T) {
	d := necoDC(t)
	ctx := context.Background()
	run := hosts{t, d.In, time.Minute}.must
	boots := d.BootServers()

	t.Run("boot servers", func(t *testing.T) {
		var addrs []string
		for _, b := range boots {
			addrs = append(addrs, d.Plan.Hosts[b].Node0.String())
		}
		for _, b := range boots {
			if got := run(b, "dpkg-query", "-W", "-f", "${Status} ${Version}", "neco"); got != "install ok installed "+necoV1 {
				t.Errorf("%s: neco package %q", b, got)
			}
			units := []string{"etcd", "vault", "sabakan", "neco-updater", "neco-worker", "node-health-agent", "sabakan-state-setter", "cke", "bgp-node-agent"}
			out, _ := d.In.Run(ctx, b, append([]string{"systemctl", "is-active"}, units...)...)
			if got := strings.Fields(out); !slices.Equal(got, slices.Repeat([]string{"active"}, len(units))) {
				t.Errorf("%s: %v are %v", b, units, got)
			}
			if out, _ := d.In.Run(ctx, b, "systemctl", "--failed", "--no-legend", "--plain"); strings.TrimSpace(out) != "" {
				t.Errorf("%s: failed units:\n%s", b, out)
			}
			if h := run(b, "curl", "-sf", "http://127.0.0.1:10080/health"); !strings.Contains(h, "healthy") {
				t.Errorf("%s: sabakan health %s", b, h)
			}
			// Vault: 200 active, 429 standby; sealed would be 503.
			code := run(b, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "/etc/neco/ca-server.crt",
				"https://"+d.Plan.Hosts[b].Node0.String()+":8200/v1/sys/health")
			if code != "200" && code != "429" {
				t.Errorf("%s: vault health %s", b, code)
			}
		}
		// One etcd cluster of three members, over the fabric.
		out := run(boots[0], "etcdctl", "--endpoints", "https://"+strings.Join(addrs, ":2379,https://")+":2379",
			"--cacert", "/etc/neco/ca-server.crt", "--cert", "/etc/neco/etcd-root.crt", "--key", "/etc/neco/etcd-root.key",
			"endpoint", "health", "--cluster")
		if n := strings.Count(out, "is healthy"); n != len(boots) {
			t.Errorf("etcd: %d healthy members, want %d:\n%s", n, len(boots), out)
		}
		if _, err := os.Stat(filepath.Join(d.Share, "bootstrap-token")); err == nil {
			t.Error("the bootstrap token outlived setup")
		}
		s, err := d.Status(ctx, boots[1])
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Completed(necoV1); !ok || err != nil || !slices.Equal(s.BootServers, d.LRNs()) {
			t.Errorf("first update: completed=%v %v, boot servers %v:\n%+v", ok, err, s.BootServers, s)
		}
	})

	t.Run("sabakan contents", func(t *testing.T) {
		for _, b := range boots {
			var ids []struct {
				ID     string `json:"id"`
				Exists bool   `json:"exists"`
			}
			if err := json.Unmarshal([]byte(run(b, "curl", "-sf", "http://127.0.0.1:10080/api/v1/images/coreos")), &ids); err != nil {
				t.Fatal(err)
			}
			if len(ids) != 1 || ids[0].ID != necodc.OSImageID || !ids[0].Exists {
				t.Errorf("%s: OS images %+v, want %s present", b, ids, necodc.OSImageID)
			}
		}
		if out := run(boots[2], "sabactl", "assets", "index"); !strings.Contains(out, "bgp-node-agent") {
			t.Errorf("assets: %s", out)
		}
		for _, role := range []string{"cs", "ss"} {
			if out := run(boots[1], "sabactl", "ignitions", "get", role); !strings.Contains(out, necoV1) {
				t.Errorf("ignitions of %s: %s", role, out)
			}
		}
		ms, err := d.Machines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != len(d.Plan.Hosts) {
			t.Errorf("sabakan has %d machines, the plan %d", len(ms), len(d.Plan.Hosts))
		}
		for _, m := range ms {
			for name, h := range d.Plan.Hosts {
				if h.Serial == m.Spec.Serial && (m.Spec.IPv4[0] != h.Node0.String() || m.Spec.Rack != h.Rack) {
					t.Errorf("%s: sabakan has rack %d, %v; the plan rack %d, %s", name, m.Spec.Rack, m.Spec.IPv4, h.Rack, h.Node0)
				}
			}
		}
	})

	t.Run("workers network-boot", func(t *testing.T) {
		bootAddrs := map[string]bool{}
		for _, b := range boots {
			h := d.Plan.Hosts[b]
			for _, a := range []netip.Addr{h.Node0, h.Eth0, h.Eth1} {
				bootAddrs[a.String()] = true
			}
		}
		ipam := sabakan.ReferenceIPAM()
		for _, w := range d.Workers() {
			lease := parseEnv(run(w, "cat", "/run/vdc/lease"))
			ip, err := netip.ParseAddr(lease["ip"])
			if err != nil {
				t.Fatalf("%s: lease %v", w, lease)
			}
			router := netip.MustParseAddr(lease["router"])
			rng, ok := ipam.LeaseRange(router)
			if !ok || !rng.Contains(ip) {
				t.Errorf("%s: leased %s (router %s), want an address of that relay's range", w, ip, router)
			}
			if !bootAddrs[lease["serverid"]] {
				t.Errorf("%s: lease from %s, which is not a boot server", w, lease["serverid"])
			}
			// The lease address is gone; the agent's are there.
			addrs := run(w, "ip", "-4", "-o", "addr")
			if strings.Contains(addrs, " "+ip.String()+"/") {
				t.Errorf("%s still has its DHCP address %s:\n%s", w, ip, addrs)
			}
			hp := d.Plan.Hosts[w]
			for _, a := range []string{hp.Node0.String() + "/32", hp.Eth0.String() + "/26", hp.Eth1.String() + "/26"} {
				if !strings.Contains(addrs, a) {
					t.Errorf("%s lacks %s:\n%s", w, a, addrs)
				}
			}
			// The agent took its identity from sabakan.
			var st struct {
				Identity struct {
					Serial string `json:"serial"`
				} `json:"identity"`
			}
			json.Unmarshal([]byte(run(w, "curl", "-sf", "http://127.0.0.1:9770/status")), &st)
			if st.Identity.Serial != hp.Serial {
				t.Errorf("%s: agent identity %q, want serial %s", w, st.Identity.Serial, hp.Serial)
			}
			if cfg := run(w, "cat", "/run/vdc/netboot.env"); !strings.Contains(cfg, "SABAKAN_URL=http://"+lease["serverid"]+":10080") {
				t.Errorf("%s: agent's sabakan: %s", w, cfg)
			}
		}
	})

	t.Run("fabric", func(t *testing.T) { checkFabric(t, d) })

	t.Run("QEMU machine network-boots the OS image", func(t *testing.T) {
		for _, n := range d.Plan.Cluster.Nodes {
			serial := n.SMBIOS.Serial
			console := filepath.Join(d.Names.HostDir(n.Name), "console.log")
			wctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
			err := proc.WaitFor(wctx, time.Second, func() bool {
				b, _ := os.ReadFile(console)
				return bytes.Contains(b, []byte(necodc.OSReady+" "+serial))
			})
			cancel()
			b, _ := os.ReadFile(console)
			if err != nil {
				t.Fatalf("%s did not boot its OS: %v\nconsole:\n%s", n.Name, err, tail(string(b), 3000))
			}
			text := string(b)
			got := text[strings.LastIndex(text, necodc.IgnitionBegin)+len(necodc.IgnitionBegin):]
			got = strings.TrimLeft(got, "\r\n")
			got, _, _ = strings.Cut(got, "\n")
			// Rendered by the sabakan that answered (its URL is in the
			// Ignition); ask the same one.
			url := regexp.MustCompile(`fetching Ignition from (\S+)`).FindStringSubmatch(text)
			if url == nil || !strings.HasSuffix(url[1], "/api/v1/boot/ignitions/"+serial+"/"+necoV1) {
				t.Fatalf("%s: no Ignition URL of the release on the console", n.Name)
			}
			want := run(boots[0], "curl", "-sf", url[1])
			if !sameJSON(got, want) {
				t.Errorf("%s fetched an Ignition other than sabakan renders for it:\n%s\nwant:\n%s", n.Name, got, want)
			}
			for _, ms := range []string{"HTTP Boot over IPv4", "iPXE", "/api/v1/boot/coreos/ipxe/" + serial, "Linux version",
				"downloading " + strings.TrimSuffix(url[1], "/boot/ignitions/"+serial+"/"+necoV1) + "/assets/bgp-node-agent",
				necodc.OSNetworkReady + " " + serial + " " + d.Plan.Hosts[n.Name].Node0.String(),
				necodc.OSMember + " " + serial} {
				if !strings.Contains(text, ms) {
					t.Errorf("%s: %q missing on the console", n.Name, ms)
				}
			}
			if strings.Contains(text, " exited (") {
				t.Errorf("%s: an agent exited:\n%s", n.Name, tail(text, 3000))
			}
		}
	})

	t.Run("states follow reality", func(t *testing.T) {
		states, err := d.States(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name := range d.Plan.Hosts {
			if states[name] != sabakan.StateHealthy {
				t.Errorf("%s is %s, want healthy", name, states[name])
			}
		}
		var qemuHealthy time.Duration
		for _, n := range d.Plan.Cluster.Nodes {
			if qemuHealthy, err = d.HealthyAfterReset(ctx, n.Name); err != nil {
				t.Error(err)
			}
			t.Logf("%s: reset, UEFI HTTP boot, OS image, agents, healthy in sabakan after %s", n.Name, qemuHealthy.Round(100*time.Millisecond))
		}
		// The audit log shows who moved them: the state setter, from
		// uninitialized (as registered) to healthy.
		logs := run(boots[0], "curl", "-sf", "http://127.0.0.1:10080/api/v1/logs")
		moved := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
			var e sabakan.AuditEntry
			if json.Unmarshal([]byte(line), &e) == nil && e.Action == "set-state" && e.User == "sabakan-state-setter" &&
				e.Detail == "uninitialized -> healthy" {
				moved[e.Instance] = true
			}
		}
		for name, h := range d.Plan.Hosts {
			if !moved[h.Serial] {
				t.Errorf("%s: no uninitialized -> healthy change by the state setter in the audit log", name)
			}
		}
		victim := d.Workers()[len(d.Workers())-1]
		start := time.Now()
		if err := d.In.Stop(ctx, victim, true); err != nil {
			t.Fatal(err)
		}
		if err := d.WaitStates(ctx, sabakan.StateUnreachable, 2*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		unreachable := time.Since(start)
		t.Logf("%s: power cut, unreachable in sabakan after %s", victim, unreachable.Round(100*time.Millisecond))
		start = time.Now()
		if err := d.In.Start(ctx, victim); err != nil {
			t.Fatal(err)
		}
		if err := d.WaitStates(ctx, sabakan.StateHealthy, 3*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		back := time.Since(start)
		t.Logf("%s: booted again, network-booted and healthy after %s", victim, back.Round(100*time.Millisecond))
		report(t, map[string]any{"create_s": shared.created.Seconds(), "bootstrapped_s": shared.bootstrapped.Seconds(),
			"ready_s": shared.ready.Seconds(), "peak_pss_mib": shared.peakPSS >> 20, "qemu_healthy_after_reset_s": qemuHealthy.Seconds(),
			"worker_unreachable_s": unreachable.Seconds(), "worker_back_healthy_s": back.Seconds()})
	})
	for _, p := range d.Phases {
		t.Logf("phase %-70s %s", p.Name, p.Took.Round(100*time.Millisecond))
	}
	t.Logf("peak memory (PSS of every process of the data center) so far: %d MiB", shared.peakPSS>>20)
}

// checkFabric checks BGP and reachability: every session up (two per
// machine, the QEMU machines' included), ECMP on the ToRs and the nspawn
// machines, the core's default a blackhole, no route from the host into
// the data center, every node0 (the QEMU machines' included) reachable
// from every nspawn machine's, every ToR relaying DHCP to every boot
// server.
func checkFabric(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	run := hosts{t, d.In, time.Minute}.must
	m := d.Plan.Menu
	sessions, err := d.In.WaitBGP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	machines := len(d.Plan.Hosts)
	if want := 2*m.Spines + 2*m.Spines*2*m.Racks + 2*machines; len(sessions) != want {
		t.Errorf("%d BGP sessions, want %d", len(sessions), want)
	}
	for _, r := range d.Plan.Routers {
		out := run(r.Name, "ip", "route", "show", "default")
		switch r.Role {
		case menu.RoleCore:
			if !strings.Contains(out, "blackhole") {
				t.Errorf("core default route = %q, want a blackhole", out)
			}
		case menu.RoleToR:
			if n := strings.Count(out, "nexthop via"); n != m.Spines {
				t.Errorf("%s default route has %d paths, want %d:\n%s", r.Name, n, m.Spines, out)
			}
			b, _ := os.ReadFile(filepath.Join(d.Names.HostDir(r.Name), "dhcp-relay.log"))
			if n := strings.Count(string(b), "DHCP relay from "+r.NodeAddress.String()); n != len(d.BootServers()) {
				t.Errorf("%s relays to %d boot servers, want %d", r.Name, n, len(d.BootServers()))
			}
		}
	}
	checkNoHostRoute(t)
	var node0s []string
	for _, h := range d.Plan.Hosts {
		node0s = append(node0s, h.Node0.String())
	}
	slices.Sort(node0s)
	for _, n := range d.Plan.Cluster.NspawnNodes {
		name, hp := n.Name, d.Plan.Hosts[n.Name]
		if out := run(name, "sh", "-c", "cat /proc/1/comm; hostname; cat /etc/vdc/serial"); out != "systemd\n"+name+"\n"+hp.Serial+"\n" {
			t.Errorf("%s: identity %q", name, out)
		}
		if out := run(name, "ip", "route", "show", "default"); strings.Count(out, "nexthop via") != 2 {
			t.Errorf("%s default route is not ECMP over both ToRs:\n%s", name, out)
		}
		script := "for a in " + strings.Join(node0s, " ") + "; do ping -c1 -W2 -I " + hp.Node0.String() + " $a >/dev/null || echo $a; done"
		if out := run(name, "sh", "-c", script); strings.TrimSpace(out) != "" {
			t.Errorf("%s cannot reach node0 of: %s", name, strings.Fields(out))
		}
	}
}

func parseEnv(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(strings.TrimSpace(a)), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
