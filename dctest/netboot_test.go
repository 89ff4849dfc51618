//go:build dctest

package dctest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// TestNetworkBoot is the network half of the bootstrap suite, runnable before
// `neco setup` exists: etcd and the real sabakan run as systemd services in
// boot-0 (the binaries of this tree, bound in), get the plan's IPAM, DHCP
// configuration and machines over the REST API, and a machine of the other
// rack asks for an address with a real DHCP client. The request crosses its
// ToR's dnsmasq relay and the BGP fabric to boot-0's node0 (advertised by
// boot-0's BGP agent); sabakan must lease from that rack's range and the
// answer must come back through the relay.
//
// Then the QEMU machine of rack 0 is reset and UEFI-HTTP-boots from that
// sabakan: OVMF's DHCP through the relay gets ipxe.efi's URL, downloads it
// over the fabric, and iPXE, started with the machine's SMBIOS serial,
// asks sabakan for its boot script (which it has none for yet: the OS
// image and Ignition templates are the boot side's to add).
func TestNetworkBoot(t *testing.T) {
	testutil.RequireCommands(t, "etcd", "busybox")
	testutil.RequireFile(t, ipxeEFI)
	etcd, _ := exec.LookPath("etcd")
	busybox, _ := exec.LookPath("busybox")
	ipxe, err := filepath.EvalSymlinks(ipxeEFI)
	if err != nil {
		t.Fatal(err)
	}
	m := menu.Menu{Racks: 2, Spines: 1, WorkersPerRack: 1, BootServers: true, Agent: true, QEMUNodes: 1, Suite: "bookworm"}
	d := newDC(t, m, func(p *menu.Plan, files string) {
		for _, n := range p.Cluster.NspawnNodes {
			switch n.Name {
			case "boot-0":
				n.Binds = append(n.Binds,
					spec.Bind{Source: etcd, Target: "/usr/local/bin/etcd", ReadOnly: true},
					spec.Bind{Source: binDir + "/sabakan", Target: "/usr/local/bin/sabakan", ReadOnly: true},
					spec.Bind{Source: files, Target: "/opt/vdc", ReadOnly: true},
					spec.Bind{Source: ipxe, Target: "/usr/local/share/ipxe.efi", ReadOnly: true})
			case "rack1-cs1":
				n.Binds = append(n.Binds, spec.Bind{Source: busybox, Target: "/usr/local/bin/busybox", ReadOnly: true})
			}
		}
	})
	boot := d.plan.Hosts["boot-0"]
	start := time.Now()
	d.run("boot-0", "systemd-run", "--unit=etcd", "--", "/usr/local/bin/etcd", "--data-dir=/var/lib/etcd",
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=default=http://127.0.0.1:2380")
	d.run("boot-0", "systemd-run", "--unit=sabakan", "--setenv=CANCELLATION_DELAY_SECONDS=0", "--", "/usr/local/bin/sabakan",
		"-etcd-endpoints=http://127.0.0.1:2379", "-dhcp-bind=0.0.0.0:67", "-data-dir=/var/lib/sabakan",
		"-ipxe-efi-path=/usr/local/share/ipxe.efi",
		"-advertise-url=http://"+boot.Node0.String()+":10080", "-advertise-url-https=https://"+boot.Node0.String()+":10443")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := proc.WaitFor(ctx, 250*time.Millisecond, func() bool {
		out, err := d.in.Run(ctx, "boot-0", "curl", "-sf", "http://127.0.0.1:10080/health")
		return err == nil && strings.Contains(out, "healthy")
	}); err != nil {
		out, _ := d.in.Run(context.Background(), "boot-0", "journalctl", "-u", "sabakan", "-u", "etcd", "--no-pager", "-n", "30")
		t.Fatalf("sabakan not healthy: %v\n%s", err, out)
	}
	t.Logf("etcd and sabakan up in boot-0 after %s", time.Since(start).Round(time.Millisecond))
	api := "http://127.0.0.1:10080/api/v1/"
	for _, step := range [][]string{
		{"-X", "PUT", "--data-binary", "@/opt/vdc/ipam.json", api + "config/ipam"},
		{"-X", "PUT", "--data-binary", "@/opt/vdc/dhcp.json", api + "config/dhcp"},
		{"-X", "POST", "--data-binary", "@/opt/vdc/machines.json", api + "machines"},
	} {
		d.run("boot-0", append([]string{"curl", "-sSf", "-H", "Content-Type: application/json", "-H", "X-Sabakan-User: dctest"}, step...)...)
	}
	if out := d.run("boot-0", "curl", "-sSf", api+"machines?role=cs"); strings.Count(out, `"serial"`) != 3 {
		t.Errorf("sabakan does not list the 2 workers and the QEMU machine:\n%s", out)
	}

	// A real DHCP client in rack 1 (busybox udhcpc, which only reports: its
	// script is /bin/true, so the agent's addresses stay as they are).
	start = time.Now()
	out := d.run("rack1-cs1", "/usr/local/bin/busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "2", "-s", "/bin/true")
	took := time.Since(start)
	match := regexp.MustCompile(`lease of ([0-9.]+) obtained.* from ([0-9.]+)`).FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("no lease:\n%s", out)
	}
	leased := netip.MustParseAddr(match[1])
	var tor menu.Router
	for _, r := range d.plan.Routers {
		if r.Name == "rack1-tor1" {
			tor = r
		}
	}
	rng, ok := d.plan.IPAM.LeaseRange(tor.NodeAddress)
	if !ok || !rng.Contains(leased) {
		t.Errorf("leased %s, want an address of %s's range starting at %s", leased, tor.Name, rng.Start)
	}
	if match[2] != boot.Node0.String() {
		t.Errorf("answered by %s, want boot-0's node0 %s", match[2], boot.Node0)
	}
	t.Logf("rack1-cs1 leased %s from sabakan on boot-0 through rack1-tor1's relay in %s", leased, took.Round(time.Millisecond))

	// UEFI HTTP boot of rack0-vm1 up to iPXE asking for its script.
	vm := d.plan.Cluster.Nodes[0]
	console := filepath.Join(d.names.HostDir(vm.Name), "console.log")
	if err := os.Truncate(console, 0); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := d.in.Reset(vm.Name); err != nil {
		t.Fatal(err)
	}
	script := "/api/v1/boot/coreos/ipxe/" + vm.SMBIOS.Serial
	bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer bcancel()
	var milestones []string
	err = proc.WaitFor(bctx, 500*time.Millisecond, func() bool {
		b, _ := os.ReadFile(console)
		text := string(b)
		for _, ms := range []string{"HTTP Boot over IPv4", "ipxe.efi", "iPXE", script} {
			if strings.Contains(text, ms) && !slices.Contains(milestones, ms) {
				milestones = append(milestones, ms)
				t.Logf("%s: %q on the console after %s", vm.Name, ms, time.Since(start).Round(100*time.Millisecond))
			}
		}
		return strings.Contains(text, script)
	})
	if err != nil {
		b, _ := os.ReadFile(console)
		t.Fatalf("%s did not reach iPXE asking for %s: %v\nconsole:\n%s", vm.Name, script, err, tail(string(b), 3000))
	}
	httpBoot := time.Since(start)
	report(t, map[string]any{"dhcp_lease_s": took.Seconds(), "leased": leased.String(), "uefi_http_boot_to_ipxe_s": httpBoot.Seconds()})
}

// ipxeEFI is Debian's iPXE EFI binary (package ipxe), which sabakan serves.
const ipxeEFI = "/usr/lib/ipxe/ipxe.efi"

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
