package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// TestQEMUNode boots a UEFI machine under TCG on a bridge and waits for its
// firmware to start network boot on the serial console. About 10 s of one
// core.
func TestQEMUNode(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "qemu-system-x86_64", "qemu-img")
	testutil.RequireFile(t, qemu.OVMFCode)
	n := newNames(t)
	c := &spec.Cluster{
		Networks: []*spec.Network{{Name: "net0"}},
		Nodes: []*spec.Node{{Name: "vm1", Interfaces: []string{"net0"}, Memory: "512M", UEFI: true,
			SMBIOS:  spec.SMBIOS{Serial: "vm1-serial"},
			Volumes: []spec.Volume{{Kind: spec.VolumeRaw, Name: "data", Size: "1G"}}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := vdc.Create(ctx, c, vdc.Options{Names: n, Accel: "tcg"}); err != nil {
		t.Fatal(err)
	}
	in, err := vdc.Open(n)
	if err != nil {
		t.Fatal(err)
	}
	sock, isSocket, err := in.Console("vm1")
	if err != nil || !isSocket {
		t.Fatalf("console = %s, %v, %v", sock, isSocket, err)
	}
	logPath := filepath.Join(n.HostDir("vm1"), "console.log")
	err = proc.WaitFor(ctx, 500*time.Millisecond, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "HTTP Boot over IPv4")
	})
	if err != nil {
		b, _ := os.ReadFile(logPath)
		q, _ := os.ReadFile(filepath.Join(n.HostDir("vm1"), "qemu.log"))
		t.Fatalf("firmware never tried HTTP boot: %v\nconsole:\n%s\nqemu:\n%s", err, b, q)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Errorf("serial socket: %v", err)
	} else {
		conn.Close()
	}
	// The tap is on the network's bridge.
	links, _ := vdcLinks(n)
	if !strings.Contains(strings.Join(links, " "), n.Tap(0)) {
		t.Errorf("links = %v, want the tap %s", links, n.Tap(0))
	}
	if err := vdc.Destroy(ctx, n); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n)
}

func vdcLinks(n vdc.Names) ([]string, error) {
	left, err := vdc.Leftovers(n)
	var links []string
	for _, l := range left {
		if strings.HasPrefix(l, "link ") {
			links = append(links, strings.TrimPrefix(l, "link "))
		}
	}
	return links, err
}

// TestProcessGroup: a process started in a group and its children are all
// found and killed through the cgroup, even after the parent detached.
func TestProcessGroup(t *testing.T) {
	testutil.RequireRoot(t)
	hier, err := proc.Detect()
	if err != nil {
		t.Fatal(err)
	}
	n := newNames(t)
	g := proc.Group{H: hier, Path: n.CgroupRoot()}
	log := filepath.Join(t.TempDir(), "log")
	pid, err := proc.Start(proc.Spec{Group: g.Sub("a"), Command: []string{"sh", "-c", "sleep 600 & sleep 600 & echo started; wait"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := proc.WaitFor(ctx, 50*time.Millisecond, func() bool {
		pids, _ := g.PIDs()
		return len(pids) == 3
	}); err != nil {
		pids, _ := g.PIDs()
		t.Fatalf("group holds %v, want the shell and two sleeps", pids)
	}
	if !proc.Alive(pid) {
		t.Error("started process not alive")
	}
	if err := g.Kill(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if pids, _ := g.PIDs(); len(pids) != 0 {
		t.Errorf("after Kill: %v", pids)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if g.Exists() {
		t.Error("group still exists")
	}
	if b, _ := os.ReadFile(log); string(b) != "started\n" {
		t.Errorf("log = %q", b)
	}
}
