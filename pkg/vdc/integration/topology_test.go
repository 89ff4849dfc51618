package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

func requireHost(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "bird", "birdc", "dnsmasq", "systemd-nspawn", "debootstrap", "nsenter")
}

// newNames returns a unique instance with a state root that is removed
// after the test, and registers a destroy that also runs on failure.
func newNames(t *testing.T) vdc.Names {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	n := vdc.Names{Instance: "t" + hex.EncodeToString(b), StateRoot: t.TempDir()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := vdc.Destroy(ctx, n); err != nil {
			t.Errorf("cleanup destroy: %v", err)
		}
	})
	return n
}

// assertGone checks that nothing of the instance is left on the host.
func assertGone(t *testing.T, n vdc.Names) {
	t.Helper()
	left, err := vdc.Leftovers(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind after destroy: %v", left)
	}
}

func TestSmallTopology(t *testing.T) {
	requireHost(t)
	n := newNames(t)
	m := menu.Small()
	m.BootServers = true
	files := filepath.Join(n.StateDir(), "files")
	p, err := menu.Generate(m, menu.Options{FilesDir: files})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(files); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	timings, err := vdc.Create(ctx, p.Cluster, vdc.Options{Names: n, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created in %s (rootfs %s)", timings.Total, timings.Rootfs)

	in, err := vdc.Open(n)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Complete {
		t.Error("instance not marked complete")
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	took, err := in.WaitBooted(wctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booted: %v", took)
	sessions, err := in.WaitBGP(wctx)
	if err != nil {
		t.Fatal(err)
	}
	// core↔spine1, spine1↔tor1, spine1↔tor2, each seen from both ends.
	if len(sessions) != 6 {
		t.Errorf("BGP sessions = %+v, want 6", sessions)
	}

	// The ToRs learned the core's default route through the spine.
	out, err := in.Run(ctx, "rack0-tor1", "ip", "route", "show", "default")
	if err != nil || !strings.Contains(out, "proto bird") {
		t.Errorf("rack0-tor1 default route = %q, %v", out, err)
	}

	// The machines are full systems with their own identity and addresses.
	for name, hp := range p.Hosts {
		out, err := in.Run(ctx, name, "sh", "-c", "cat /proc/1/comm; hostname; cat /etc/vdc/serial")
		if err != nil {
			t.Fatal(err)
		}
		if want := "systemd\n" + name + "\n" + hp.Serial + "\n"; out != want {
			t.Errorf("%s: identity = %q, want %q", name, out, want)
		}
		// Reaching both ToRs of the rack, one on each link.
		for _, tor := range p.Routers[2:] {
			if _, err := in.Run(ctx, name, "ping", "-c", "1", "-W", "2", tor.NodeAddress.String()); err != nil {
				t.Errorf("%s cannot reach %s: %v", name, tor.Name, err)
			}
		}
	}
	if _, err := in.Run(ctx, "rack0-cs1", "ping", "-c", "1", "-W", "2", p.Hosts["boot-0"].Eth1.String()); err != nil {
		t.Errorf("worker cannot reach the boot server: %v", err)
	}

	// The ToRs relay DHCP to the boot server.
	relay, _ := os.ReadFile(filepath.Join(n.HostDir("rack0-tor1"), "dhcp-relay.log"))
	if !strings.Contains(string(relay), "DHCP relay from 10.69.0.65 to 10.69.0.3") {
		t.Errorf("dhcp relay log:\n%s", relay)
	}

	// Power: a machine whose power is cut keeps its disk and its NICs, and
	// boots again; a clean stop shuts it down in order.
	if _, err := in.Run(ctx, "rack0-cs1", "sh", "-c", "echo kept > /var/tmp/disk"); err != nil {
		t.Fatal(err)
	}
	if err := in.Stop(ctx, "rack0-cs1", true); err != nil {
		t.Fatal(err)
	}
	if h := hostInfo(in, "rack0-cs1"); h.Running {
		t.Errorf("rack0-cs1 runs after a power cut: %+v", h)
	}
	if err := in.Start(ctx, "rack0-cs1"); err == nil {
		if err := in.Start(ctx, "rack0-cs1"); err == nil {
			t.Error("starting a running machine succeeded")
		}
	} else {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, time.Minute)
	defer bcancel()
	if err := in.WaitBootedHost(bctx, "rack0-cs1"); err != nil {
		t.Fatal(err)
	}
	if out, err := in.Run(ctx, "rack0-cs1", "cat", "/var/tmp/disk"); err != nil || out != "kept\n" {
		t.Errorf("after the power cut the machine's file is %q, %v", out, err)
	}
	if _, err := in.Run(ctx, "rack0-cs1", "ping", "-c", "1", "-W", "2", p.Hosts["boot-0"].Eth0.String()); err != nil {
		t.Errorf("rack0-cs1 lost its network across the power cut: %v", err)
	}
	if err := in.Stop(ctx, "rack0-cs1", false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readFile(filepath.Join(n.HostDir("rack0-cs1"), "console.log")), "Reached target") {
		t.Error("no clean shutdown on the console")
	}
	if err := in.Stop(ctx, "rack0-tor1", false); err == nil {
		t.Error("a router was stopped like a machine")
	}
	if err := in.Start(ctx, "rack0-cs1"); err != nil {
		t.Fatal(err)
	}

	// Processes are tracked in the instance's cgroup, nspawn machines'
	// systemd included.
	hier, _ := proc.Detect()
	pids, err := proc.Group{H: hier, Path: n.CgroupRoot()}.PIDs()
	if err != nil || len(pids) < 10 {
		t.Errorf("cgroup holds %d processes (%v), want BIRDs, relays, nspawn and systemd", len(pids), err)
	}

	if err := vdc.Destroy(ctx, n); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n)
	if mps, _ := rootfs.MountsUnder("/run/systemd/nspawn"); len(mps) > 0 && !nspawnRunning() {
		t.Errorf("nspawn runtime tmpfs still mounted with no nspawn running")
	}
}

// TestDestroyWithoutLedger simulates a crash that lost the ledger: destroy
// must still find everything by name and cgroup.
func TestDestroyWithoutLedger(t *testing.T) {
	requireHost(t)
	n := newNames(t)
	c := &spec.Cluster{
		Networks:   []*spec.Network{{Name: "net0", Type: spec.NetworkInternal}},
		Namespaces: []*spec.NetworkNamespace{{Name: "r1", Interfaces: []spec.Interface{{Network: "net0", Addresses: []string{"10.69.0.1/26"}}}, Apps: []spec.App{{Name: "sleeper", Command: []string{"sh", "-c", "sleep 600 & sleep 600"}}}}},
		Rootfses:   []*spec.Rootfs{{Name: menu.RootfsName, Packages: menu.RootfsPackages()}}, // the cached tree of TestSmallTopology
		NspawnNodes: []*spec.NspawnNode{{Name: "m1", Rootfs: menu.RootfsName,
			Interfaces: []spec.Interface{{Network: "net0", Addresses: []string{"10.69.0.2/26"}}}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := vdc.Create(ctx, c, vdc.Options{Names: n, Log: testLog{t}}); err != nil {
		t.Fatal(err)
	}
	in, err := vdc.Open(n)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if _, err := in.WaitBooted(wctx); err != nil {
		t.Fatal(err)
	}
	if out, err := in.Run(ctx, "m1", "ping", "-c", "1", "-W", "2", "10.69.0.1"); err != nil {
		t.Fatalf("m1 → r1: %v\n%s", err, out)
	}
	left, _ := vdc.Leftovers(n)
	if len(left) < 5 {
		t.Fatalf("a live instance should show up in Leftovers, got %v", left)
	}
	if err := os.Remove(filepath.Join(n.StateDir(), vdc.LedgerFile)); err != nil {
		t.Fatal(err)
	}
	if err := vdc.Destroy(ctx, n); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n)
}

// TestCreateRefusesExisting: a second create of the same instance fails
// without touching the first.
func TestCreateRefusesExisting(t *testing.T) {
	requireHost(t)
	n := newNames(t)
	c := &spec.Cluster{Networks: []*spec.Network{{Name: "net0", Type: spec.NetworkInternal}},
		Namespaces: []*spec.NetworkNamespace{{Name: "r1", Interfaces: []spec.Interface{{Network: "net0", Addresses: []string{"10.69.0.1/26"}}}}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := vdc.Create(ctx, c, vdc.Options{Names: n}); err != nil {
		t.Fatal(err)
	}
	if _, err := vdc.Create(ctx, c, vdc.Options{Names: n}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	in, err := vdc.Open(n)
	if err != nil || len(in.Hosts()) != 1 || len(in.Hosts()[0].Addresses) != 1 {
		t.Fatalf("first instance damaged: %v", err)
	}
	if err := vdc.Destroy(ctx, n); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n)
}

func nspawnRunning() bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == "systemd-nspawn" {
			return true
		}
	}
	return false
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if !strings.HasPrefix(line, "I: ") {
			l.t.Log(line)
		}
	}
	return len(p), nil
}

func hostInfo(in *vdc.Instance, name string) vdc.HostInfo {
	for _, h := range in.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return vdc.HostInfo{}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
