package integration

import (
	"bufio"
	"context"
	"debug/elf"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// hostBusybox is the host's static busybox (busybox-static, from make
// setup): the one file of the test image.
const hostBusybox = "/bin/busybox"

// TestKubernetesNode: every nspawn machine is ready for a kubelet. It is in
// a cgroup of its own in every hierarchy (its cgroup namespace sees only
// that), containerd's store is not on its overlayfs root, the boot unit
// made the cgroups writable, /dev/kmsg and kubelet's sysctls without
// touching the host's, and each machine has its own SSH host keys.
// containerd runs a container (overlayfs snapshot, runc, a memory limit in
// the machine's own memory cgroup). Destroy leaves no cgroup in any
// hierarchy, the ones runc and systemd made in the machine included.
func TestKubernetesNode(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "systemd-nspawn", "debootstrap", "nsenter")
	requireStatic(t, hostBusybox)
	n := newNames(t)
	machines := []string{"m1", "m2"}
	c := &spec.Cluster{
		Networks: []*spec.Network{{Name: "net0", Type: spec.NetworkInternal}},
		Rootfses: []*spec.Rootfs{{Name: menu.RootfsName, Packages: menu.RootfsPackages()}}, // the menus' tree
	}
	for i, m := range machines {
		c.NspawnNodes = append(c.NspawnNodes, &spec.NspawnNode{Name: m, Rootfs: menu.RootfsName,
			Interfaces: []spec.Interface{{Network: "net0", Addresses: []string{"10.69.0." + strconv.Itoa(i+1) + "/26"}}}})
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	hostSysctls := readSysctls(t)
	all, err := proc.DetectAll()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	timings, err := vdc.Create(ctx, c, vdc.Options{Names: n, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created in %s (rootfs %s)", timings.Total, timings.Rootfs)
	in, err := vdc.Open(n)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if _, err := in.WaitBooted(wctx); err != nil {
		t.Fatal(err)
	}
	run := func(m string, argv ...string) string {
		t.Helper()
		out, err := in.Run(ctx, m, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	hostKeys := map[string]string{}
	for _, m := range machines {
		cg := n.MachineCgroup(m)
		// systemd is done: nothing failed, the unit and the node's
		// services ran. (A failed unit would make it "degraded".)
		if err := proc.WaitFor(wctx, 200*time.Millisecond, func() bool { return in.SystemState(ctx, m) != "starting" }); err != nil {
			t.Fatal(err)
		}
		if s := in.SystemState(ctx, m); s != "running" {
			out, _ := in.Run(ctx, m, "systemctl", "--failed", "--no-legend")
			t.Errorf("%s: system %s, failed units:\n%s", m, s, out)
		}
		if out, err := in.Run(ctx, m, "systemctl", "is-active", nspawn.KubernetesNodeUnit, "containerd", "ssh", "haproxy"); err != nil {
			t.Errorf("%s: units not active: %v\n%s", m, err, out)
		}

		// Its own cgroup in every hierarchy, seen from the host ...
		leader, err := nspawn.Leader(hostInfo(in, m).Apps[0].PID)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines(readFile(filepath.Join("/proc", itoa(leader), "cgroup"))) {
			if f := strings.SplitN(line, ":", 3); len(f) != 3 || !strings.HasPrefix(f[2]+"/", "/"+cg+"/") {
				t.Errorf("%s: PID 1 is in %q, want under /%s in every hierarchy", m, line, cg)
			}
		}
		for _, h := range all {
			if _, err := os.Stat(filepath.Join(h, cg)); err != nil {
				t.Errorf("%s: %v", m, err)
			}
		}
		// ... and its cgroup namespace is rooted there: inside, every
		// controller's path is its own root (systemd sits in /init.scope
		// of the hierarchies it manages).
		for _, line := range lines(run(m, "cat", "/proc/1/cgroup")) {
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 || f[2] != "/" && !(f[2] == "/init.scope" && (f[1] == "name=systemd" || f[1] == "")) {
				t.Errorf("%s: inside, PID 1 is in %q", m, line)
			}
		}
		// Its cgroup mounts show only its subtree, and the boot unit made
		// the v1 controllers writable (all but systemd's).
		for _, mnt := range cgroupMounts(t, leader) {
			if !strings.HasPrefix(mnt.root+"/", "/"+cg+"/") {
				t.Errorf("%s: %s mounts cgroup %s, outside its own", m, mnt.point, mnt.root)
			}
			base := filepath.Base(mnt.point)
			if mnt.fstype == "cgroup" && base != "systemd" && !mnt.rw {
				t.Errorf("%s: %s is read-only", m, mnt.point)
			}
		}

		// containerd's store is a host directory, not the overlayfs root.
		if fs := run(m, "stat", "-f", "-c", "%T", "/", nspawn.ContainerdTarget); lines(fs)[0] != "overlayfs" || lines(fs)[1] == "overlayfs" {
			t.Errorf("%s: file systems of / and %s: %q", m, nspawn.ContainerdTarget, fs)
		}

		// /dev/kmsg and the sysctls kubelet wants, inside only. A write
		// (as kubelet would) lands in the machine's file.
		if out := run(m, "readlink", "/dev/kmsg"); out != "/dev/null\n" {
			t.Errorf("%s: /dev/kmsg -> %q", m, out)
		}
		run(m, "sh", "-c", "echo 10 > /proc/sys/kernel/panic")
		if out := run(m, "cat", "/proc/sys/kernel/panic", "/proc/sys/kernel/panic_on_oops", "/proc/sys/vm/overcommit_memory"); out != "10\n1\n1\n" {
			t.Errorf("%s: sysctls inside = %q, want 10 1 1", m, out)
		}

		hostKeys[m] = run(m, "cat", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ecdsa_key.pub")
		if !strings.HasSuffix(lines(hostKeys[m])[0], " root@"+m) {
			t.Errorf("%s: host key %q", m, hostKeys[m])
		}
		// sshd offers them (and no other).
		for _, l := range lines(run(m, "ssh-keyscan", "127.0.0.1")) {
			if f := strings.Fields(l); len(f) == 3 && !strings.Contains(hostKeys[m], f[1]+" "+f[2]) {
				t.Errorf("%s: sshd offers %s, not one of its keys", m, l)
			}
		}
	}
	if got := readSysctls(t); got != hostSysctls {
		t.Errorf("the host's sysctls changed: %q, were %q", got, hostSysctls)
	}
	if hostKeys["m1"] == hostKeys["m2"] {
		t.Errorf("m1 and m2 share their SSH host keys:\n%s", hostKeys["m1"])
	}
	mirror, err := rootfs.AptMirror("/", "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(rootfs.DefaultCacheDir, rootfs.Spec{Suite: "bookworm", Variant: "minbase", Mirror: mirror, Packages: menu.RootfsPackages()}.Key())
	treeKey, err := os.ReadFile(filepath.Join(tree, "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(treeKey)); len(f) < 2 || strings.Contains(hostKeys["m1"]+hostKeys["m2"], f[1]) {
		t.Errorf("a machine offers the tree's host key %q", treeKey)
	}

	// containerd in m1 imports an image and runs containers from it.
	layer, err := images.NewLayer([]images.File{images.HostFile("/bin/busybox", 0o755, hostBusybox), images.Symlink("/bin/sh", "busybox")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.NewImage(images.Config{Cmd: []string{"/bin/sh"}}, layer)
	if err != nil {
		t.Fatal(err)
	}
	var set images.Set
	const ref = "vdc.test/busybox:1"
	if err := set.Add(ref, img); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Write(filepath.Join(rootOf(in, "m1"), "var/tmp/busybox")); err != nil {
		t.Fatal(err)
	}
	run("m1", "tar", "-C", "/var/tmp/busybox", "-cf", "/var/tmp/busybox.tar", ".")
	run("m1", "ctr", "images", "import", "/var/tmp/busybox.tar")
	if out := run("m1", "ctr", "run", "--rm", ref, "hello", "/bin/busybox", "echo", "hello from a container"); out != "hello from a container\n" {
		t.Errorf("ctr run: %q", out)
	}
	const limit = "67108864"
	run("m1", "ctr", "run", "-d", "--memory-limit", limit, ref, "sleeper", "/bin/busybox", "sleep", "600")
	if d := findCgroup(filepath.Join("/sys/fs/cgroup/memory", n.MachineCgroup("m1")), "memory.limit_in_bytes", limit); d == "" {
		t.Errorf("no memory cgroup with the container's limit under m1's")
	} else {
		t.Logf("the container's memory cgroup: %s", d)
	}
	run("m1", "ctr", "task", "rm", "-f", "sleeper")
	run("m1", "ctr", "container", "rm", "sleeper")

	// A kubelet leaves its cgroups behind (kubepods/…): so does m2, in
	// every writable hierarchy, through its own cgroup mounts.
	run("m2", "sh", "-c", `for d in /sys/fs/cgroup/*; do
	case ${d##*/} in systemd | unified) continue ;; esac
	mkdir -p $d/kubepods/burstable/pod1
done`)
	for _, h := range all {
		if b := filepath.Base(h); b == "systemd" || b == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(h, n.MachineCgroup("m2"), "kubepods/burstable/pod1")); err != nil {
			t.Error(err)
		}
	}
	if left, _ := vdc.Leftovers(n); len(left) == 0 {
		t.Fatal("a live instance shows no leftovers")
	}

	if err := vdc.Destroy(ctx, n); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n)
	for _, h := range all {
		if _, err := os.Stat(filepath.Join(h, n.CgroupRoot())); err == nil {
			t.Errorf("%s left", filepath.Join(h, n.CgroupRoot()))
		}
	}
	if got := readSysctls(t); got != hostSysctls {
		t.Errorf("the host's sysctls changed: %q, were %q", got, hostSysctls)
	}
}

func readSysctls(t *testing.T) string {
	t.Helper()
	var s []string
	for _, f := range []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"} {
		b, err := os.ReadFile("/proc/sys/" + f)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, f+"="+strings.TrimSpace(string(b)))
	}
	return strings.Join(s, " ")
}

type cgroupMount struct {
	root, point, fstype string
	rw                  bool
}

// cgroupMounts lists the cgroup mounts in the mount namespace of pid; each
// root is shown as the host sees it.
func cgroupMounts(t *testing.T, pid int) []cgroupMount {
	t.Helper()
	var out []cgroupMount
	sc := bufio.NewScanner(strings.NewReader(readFile(filepath.Join("/proc", itoa(pid), "mountinfo"))))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i, x := range f {
			if x == "-" && i+1 < len(f) && len(f) > 5 && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") {
				out = append(out, cgroupMount{root: f[3], point: f[4], fstype: f[i+1], rw: strings.HasPrefix(f[5], "rw")})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no cgroup mounts in the machine")
	}
	return out
}

// findCgroup returns a directory under dir whose file holds value.
func findCgroup(dir, file, value string) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || found != "" {
			return nil
		}
		if b, err := os.ReadFile(filepath.Join(p, file)); err == nil && strings.TrimSpace(string(b)) == value {
			found = p
		}
		return nil
	})
	return found
}

// rootOf is the host path of an nspawn machine's root.
func rootOf(in *vdc.Instance, m string) string { return filepath.Join(in.HostDir(m), "root") }

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

func itoa(i int) string { return strconv.Itoa(i) }

// requireStatic needs a statically linked executable at path.
func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		testutil.Missing(t, "%s: %v (make setup installs busybox-static)", path, err)
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			testutil.Missing(t, "%s is not statically linked (make setup installs busybox-static)", path)
		}
	}
}
