// Package nspawn turns an NspawnNode into a systemd-nspawn invocation and
// reaches into a running one. The machine boots systemd as its PID 1 in a
// network namespace prepared beforehand (its interfaces already on the
// data center's bridges), is not registered with machined (the host's PID 1
// need not be systemd), and keeps the cgroup it was started in, under which
// nspawn nests its own "payload" and "supervisor" groups. vdc starts it in
// a cgroup of its own in every hierarchy (see package proc), so the root of
// the machine's cgroup namespace is its own in every controller.
//
// Every machine can carry a Kubernetes node (kubelet, containerd, runc;
// docs/dctest.md and the experiment in kubernetes-node.md): containerd's
// store is a host directory (ContainerdDir) rather than the machine's
// overlayfs root, the machine has SSH host keys of its own
// (WriteHostKeys), and a unit at boot (WriteKubernetesNode) makes up for
// what nspawn withholds.
package nspawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// RuntimeDir must be a tmpfs before systemd-nspawn runs on a host whose
// PID 1 is not systemd; without it nspawn fails silently.
const RuntimeDir = "/run/systemd/nspawn"

// SerialPath is where the machine finds its serial number (a QEMU node
// has it in /sys/class/dmi/id/product_serial; a container has no SMBIOS,
// and this host may have no DMI to bind over).
const SerialPath = "/etc/vdc/serial"

// ContainerdTarget is where containerd keeps its images, snapshots and
// containers in a machine.
const ContainerdTarget = "/var/lib/containerd"

// ContainerdDir is the host directory bound on ContainerdTarget, under the
// machine's state directory hostDir. containerd's overlayfs snapshotter
// cannot use a directory on the machine's root, itself an overlayfs mount
// ("filesystem on ... not supported as upperdir"): every container mount
// would fail. It must exist before the machine starts.
func ContainerdDir(hostDir string) string { return filepath.Join(hostDir, "containerd") }

// Args returns the systemd-nspawn command line that boots node from root
// inside the network namespace at netnsPath; hostDir is the machine's state
// directory on the host (ContainerdDir is in it). The node's own binds come
// last: one of them may replace the one on ContainerdTarget.
func Args(node *spec.NspawnNode, root, netnsPath, hostDir string) []string {
	args := []string{
		"systemd-nspawn",
		"--quiet",
		"--directory=" + root,
		"--machine=" + node.Name,
		"--hostname=" + node.Hostname,
		"--boot",
		"--register=no",
		"--keep-unit",
		"--network-namespace-path=" + netnsPath,
		"--console=read-only",
		// runc in the machine (containerd, kubelet) needs the keyring.
		"--system-call-filter=@keyring",
		// The machine owns its network namespace like a server owns its
		// NICs: the BGP agent makes node0 and addresses, a CNI plugin
		// routes; BIRD may ask for real-time scheduling (which a kernel
		// with RT group scheduling refuses all the same: the machine's
		// own cpu cgroup has no real-time budget). (nspawn grants
		// CAP_NET_ADMIN only for networks it made itself.)
		"--capability=CAP_NET_ADMIN,CAP_SYS_NICE",
		"--resolv-conf=off",
		"--timezone=off",
		"--link-journal=no",
	}
	if !slices.ContainsFunc(node.Binds, func(b spec.Bind) bool { return filepath.Clean(bindTarget(b)) == ContainerdTarget }) {
		args = append(args, "--bind="+ContainerdDir(hostDir)+":"+ContainerdTarget)
	}
	for _, b := range node.Binds {
		target := bindTarget(b)
		opt := "--bind="
		if b.ReadOnly {
			opt = "--bind-ro="
		}
		args = append(args, opt+b.Source+":"+target)
	}
	return args
}

func bindTarget(b spec.Bind) string {
	if b.Target == "" {
		return b.Source
	}
	return b.Target
}

// PrepareRuntimeDir mounts a tmpfs on RuntimeDir unless one is there.
func PrepareRuntimeDir(mount func(dir string) error) error {
	if err := os.MkdirAll(RuntimeDir, 0o755); err != nil {
		return err
	}
	mounted, err := isMountPoint(RuntimeDir)
	if err != nil || mounted {
		return err
	}
	return mount(RuntimeDir)
}

func isMountPoint(dir string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			return true, nil
		}
	}
	return false, nil
}

// Env is systemd-nspawn's environment: /proc/sys/net writable in the
// machine (its own network namespace's settings: rp_filter, forwarding),
// the rest of /proc/sys and /sys read-only as usual.
var Env = []string{"SYSTEMD_NSPAWN_API_VFS_WRITABLE=network"}

// ErrNotRunning means the machine has no running init.
var ErrNotRunning = errors.New("machine is not running")

// Leader finds the machine's PID 1 (as seen from the host): the child of
// the systemd-nspawn process with the given PID.
func Leader(nspawnPID int) (int, error) {
	if !proc.Alive(nspawnPID) {
		return 0, ErrNotRunning
	}
	for _, c := range proc.Children(nspawnPID) {
		if proc.Alive(c) {
			return c, nil
		}
	}
	return 0, ErrNotRunning
}

// EnterArgs is the command that runs argv inside the machine whose PID 1
// is leader, in all its namespaces, with a login-like environment.
func EnterArgs(leader int, argv []string) []string {
	out := []string{"nsenter", fmt.Sprintf("--target=%d", leader), "--all", "--",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TERM=" + termOr("xterm")}
	return append(out, argv...)
}

func termOr(def string) string {
	if t := os.Getenv("TERM"); t != "" {
		return t
	}
	return def
}

// WriteIdentity writes the machine's identity into its root: hostname,
// machine-id and, when it has one, its serial at SerialPath.
func WriteIdentity(root string, node *spec.NspawnNode, machineID string) error {
	files := map[string]string{
		"etc/hostname":   node.Hostname + "\n",
		"etc/machine-id": machineID + "\n",
		"etc/hosts":      "127.0.0.1 localhost\n127.0.1.1 " + node.Hostname + "\n",
	}
	if node.SMBIOS.Serial != "" {
		files[strings.TrimPrefix(SerialPath, "/")] = node.SMBIOS.Serial + "\n"
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("nspawn: %w", err)
		}
		os.Remove(full) // may be a symlink in the lower layer
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			return fmt.Errorf("nspawn: %w", err)
		}
	}
	return nil
}
