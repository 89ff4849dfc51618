package vdc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// Options control Create.
type Options struct {
	Names
	// RootfsCache holds the cached Debian trees (rootfs.DefaultCacheDir).
	RootfsCache string
	// Accel is the QEMU accelerator: auto, kvm or tcg.
	Accel string
	// Log receives progress lines.
	Log io.Writer
}

// ErrExists means the instance already has a state directory with a
// ledger: destroy it first.
var ErrExists = errors.New("instance already exists")

// Timings are how long the phases of Create took.
type Timings struct {
	Rootfs  time.Duration `json:"rootfs"`
	Network time.Duration `json:"network"`
	Nodes   time.Duration `json:"nodes"`
	Total   time.Duration `json:"total"`
}

type creator struct {
	Options
	c       *spec.Cluster
	l       *ledger
	cg      proc.Group        // the instance's group in the tracking hierarchies
	all     proc.Hierarchies  // every hierarchy, for machines' groups
	bridges map[string]string // Network name → bridge
	veths   int
	taps    int
	roots   map[string]string // Rootfs name → cached tree
}

// Create builds cluster on this machine as the instance opts.Instance. On
// error, what was made stays recorded in the ledger: call Destroy.
func Create(ctx context.Context, c *spec.Cluster, opts Options) (*Timings, error) {
	start := time.Now()
	if err := CheckInstance(opts.Instance); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.RootfsCache == "" {
		opts.RootfsCache = rootfs.DefaultCacheDir
	}
	if err := preflight(c); err != nil {
		return nil, err
	}
	dir := opts.StateDir()
	if entries, _ := readLedger(dir); len(entries) > 0 {
		return nil, fmt.Errorf("vdc: %s (%s): %w; run destroy first", opts.Instance, dir, ErrExists)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vdc: %w", err)
	}
	doc, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ClusterFile), doc, 0o644); err != nil {
		return nil, fmt.Errorf("vdc: %w", err)
	}
	hier, err := proc.Detect()
	if err != nil {
		return nil, err
	}
	all, err := proc.DetectAll()
	if err != nil {
		return nil, err
	}
	cr := &creator{Options: opts, c: c, bridges: map[string]string{}, roots: map[string]string{},
		cg: proc.Group{H: hier, Path: opts.CgroupRoot()}, all: all}
	var t Timings

	// Root trees first: the slow part, and nothing on the host to undo if
	// it fails.
	t0 := time.Now()
	for _, r := range c.Rootfses {
		if !cr.usesRootfs(r.Name) {
			continue
		}
		d, _, err := rootfs.Ensure(ctx, opts.RootfsCache, rootfs.Spec{Suite: r.Suite, Variant: r.Variant, Mirror: r.Mirror, Packages: r.Packages}, opts.Log)
		if err != nil {
			return nil, err
		}
		cr.roots[r.Name] = d
	}
	t.Rootfs = time.Since(t0)

	cr.l, err = openLedger(dir)
	if err != nil {
		return nil, err
	}
	defer cr.l.close()
	if err := cr.record(Entry{Kind: EntryCgroup, Name: cr.cg.Path}); err != nil {
		return nil, err
	}
	if err := cr.cg.Create(); err != nil {
		return nil, err
	}

	t0 = time.Now()
	for i, n := range c.Networks {
		if err := cr.network(ctx, i, n); err != nil {
			return nil, err
		}
	}
	for _, ns := range c.Namespaces {
		if err := cr.namespace(ctx, ns); err != nil {
			return nil, fmt.Errorf("vdc: NetworkNamespace %s: %w", ns.Name, err)
		}
	}
	t.Network = time.Since(t0)

	t0 = time.Now()
	if len(c.NspawnNodes) > 0 {
		if err := nspawn.PrepareRuntimeDir(mountTmpfs); err != nil {
			return nil, fmt.Errorf("vdc: prepare %s: %w", nspawn.RuntimeDir, err)
		}
	}
	for _, n := range c.NspawnNodes {
		if err := cr.nspawnNode(ctx, n); err != nil {
			return nil, fmt.Errorf("vdc: NspawnNode %s: %w", n.Name, err)
		}
	}
	if len(c.Nodes) > 0 {
		accel, err := qemu.ChooseAccel(opts.Accel)
		if err != nil {
			return nil, err
		}
		for _, n := range c.Nodes {
			if err := cr.qemuNode(ctx, n, accel); err != nil {
				return nil, fmt.Errorf("vdc: Node %s: %w", n.Name, err)
			}
		}
	}
	t.Nodes = time.Since(t0)
	if err := cr.record(Entry{Kind: EntryDone}); err != nil {
		return nil, err
	}
	t.Total = time.Since(start)
	return &t, nil
}

func mountTmpfs(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755") }

// ClusterFile is the copy of the cluster description in the state dir.
const ClusterFile = "cluster.yml"

func (cr *creator) record(e Entry) error { return cr.l.record(e) }

func (cr *creator) logf(format string, args ...any) {
	fmt.Fprintf(cr.Log, format+"\n", args...)
}

func (cr *creator) usesRootfs(name string) bool {
	for _, n := range cr.c.NspawnNodes {
		if n.Rootfs == name {
			return true
		}
	}
	return false
}

// preflight checks for the programs the cluster needs before anything is
// made, so a missing package is one clear error.
func preflight(c *spec.Cluster) error {
	need := map[string]string{"ip": "iproute2"}
	for _, ns := range c.Namespaces {
		for _, a := range ns.Apps {
			need[a.Command[0]] = "the package that provides it"
		}
	}
	if len(c.NspawnNodes) > 0 {
		need["systemd-nspawn"] = "systemd-container"
		need["debootstrap"] = "debootstrap"
		need["nsenter"] = "util-linux"
	}
	if len(c.Nodes) > 0 {
		need["qemu-system-x86_64"] = "qemu-system-x86"
		need["qemu-img"] = "qemu-utils"
	}
	var missing []string
	for cmd, pkg := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", cmd, pkg))
		}
	}
	for _, n := range c.Nodes {
		if n.UEFI {
			for _, f := range []string{qemu.OVMFCode, qemu.OVMFVars} {
				if _, err := os.Stat(f); err != nil {
					missing = append(missing, f+" (ovmf)")
				}
			}
			break
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("vdc: missing on this machine: %s; `make setup` installs them", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("vdc: creating a data center needs root")
	}
	return nil
}

func (cr *creator) network(ctx context.Context, i int, n *spec.Network) error {
	br := cr.Bridge(n.Name, i)
	cr.bridges[n.Name] = br
	if err := cr.record(Entry{Kind: EntryBridge, Name: br, Host: n.Name}); err != nil {
		return err
	}
	if err := host.AddBridge(ctx, br); err != nil {
		return fmt.Errorf("vdc: Network %s: %w", n.Name, err)
	}
	if n.Type != spec.NetworkInternal {
		// Host-facing address only: no forwarding or NAT is configured, so
		// nothing is routed between the data center and the host's network.
		if err := host.AddAddress(br, n.Address); err != nil {
			return fmt.Errorf("vdc: Network %s: %w", n.Name, err)
		}
	}
	return nil
}

// netns creates the namespace of a host and its interfaces.
func (cr *creator) netns(ctx context.Context, hostName string, ifs []spec.Interface, sysctls map[string]string) (string, error) {
	ns := cr.Netns(hostName)
	if err := cr.record(Entry{Kind: EntryNetns, Name: ns, Host: hostName}); err != nil {
		return "", err
	}
	if err := host.AddNetns(ctx, ns); err != nil {
		return "", err
	}
	if err := host.SetSysctls(ns, sysctls); err != nil {
		return "", err
	}
	for i, ifc := range ifs {
		veth := cr.Veth(cr.veths)
		cr.veths++
		if err := cr.record(Entry{Kind: EntryLink, Name: veth, Host: hostName}); err != nil {
			return "", err
		}
		if err := host.AddVeth(veth, cr.bridges[ifc.Network], ns, ifc.IfName(i), ifc.Addresses, ifc.LinkScope); err != nil {
			return "", err
		}
	}
	return ns, nil
}

func (cr *creator) namespace(ctx context.Context, n *spec.NetworkNamespace) error {
	ns, err := cr.netns(ctx, n.Name, n.Interfaces, host.RouterSysctls)
	if err != nil {
		return err
	}
	dir := cr.HostDir(n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, s := range n.InitScripts {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, s)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("init script %s: %w: %s", s, err, strings.TrimSpace(string(out)))
		}
	}
	for _, a := range n.Apps {
		logPath := filepath.Join(dir, a.Name+".log")
		if err := cr.start(Entry{Host: n.Name, App: a.Name, Log: logPath}, proc.Spec{
			Group: cr.cg.Sub(n.Name).Sub(a.Name), Netns: ns, Command: a.Command, Log: logPath, Dir: dir,
		}); err != nil {
			return err
		}
	}
	cr.logf("namespace %s: %d interfaces, %d apps", n.Name, len(n.Interfaces), len(n.Apps))
	return nil
}

// start launches a process and records it. The ledger entry is written
// after the start because it carries the PID; the cgroup entry written
// earlier already covers a crash in between.
func (cr *creator) start(e Entry, s proc.Spec) error {
	pid, err := proc.Start(s)
	if err != nil {
		return err
	}
	e.Kind, e.PID = EntryProcess, pid
	return cr.record(e)
}

// nodeSysctls are those of a machine: no IPv6 (the data center is IPv4),
// routing left to what runs inside.
var nodeSysctls = map[string]string{
	"net/ipv6/conf/all/disable_ipv6":     "1",
	"net/ipv6/conf/default/disable_ipv6": "1",
}

func (cr *creator) nspawnNode(ctx context.Context, n *spec.NspawnNode) error {
	ns, err := cr.netns(ctx, n.Name, n.Interfaces, nodeSysctls)
	if err != nil {
		return err
	}
	dir := cr.HostDir(n.Name)
	ov := rootfs.NewOverlay(cr.roots[n.Rootfs], dir)
	if err := cr.record(Entry{Kind: EntryMount, Path: ov.Root, Host: n.Name}); err != nil {
		return err
	}
	if err := ov.Mount(); err != nil {
		return err
	}
	id := sha256.Sum256([]byte(cr.Instance + "/" + n.Name + "/" + time.Now().String()))
	if err := nspawn.WriteIdentity(ov.Root, n, hex.EncodeToString(id[:16])); err != nil {
		return err
	}
	if _, err := nspawn.WriteHostKeys(ov.Root, "root@"+n.Hostname); err != nil {
		return err
	}
	if err := nspawn.WriteKubernetesNode(ov.Root); err != nil {
		return err
	}
	if err := os.MkdirAll(nspawn.ContainerdDir(dir), 0o711); err != nil {
		return err
	}
	for _, s := range n.InitScripts {
		cmd := exec.CommandContext(ctx, s, ov.Root)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("init script %s: %w: %s", s, err, strings.TrimSpace(string(out)))
		}
	}
	g := proc.Group{H: cr.all, Path: cr.MachineCgroup(n.Name)}
	if err := cr.record(Entry{Kind: EntryCgroup, Name: g.Path, Host: n.Name}); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "console.log")
	if err := cr.start(Entry{Host: n.Name, App: "nspawn", Log: logPath, Console: logPath, Path: ov.Root}, proc.Spec{
		Group: g, Command: nspawn.Args(n, ov.Root, host.NetnsPath(ns), dir), Log: logPath, Dir: dir,
		Env: nspawn.Env,
	}); err != nil {
		return err
	}
	cr.logf("nspawn node %s: booting (console: %s)", n.Name, logPath)
	return nil
}

func (cr *creator) qemuNode(ctx context.Context, n *spec.Node, accel string) error {
	if n.TPM {
		return errors.New("tpm: swtpm is not supported yet")
	}
	dir := cr.HostDir(n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	o := qemu.Options{
		Accel:         accel,
		SerialSocket:  filepath.Join(dir, "serial.sock"),
		SerialLog:     filepath.Join(dir, "console.log"),
		MonitorSocket: filepath.Join(dir, "qmp.sock"),
		Ignition:      n.Ignition,
	}
	for _, netName := range n.Interfaces {
		tap := cr.Tap(cr.taps)
		cr.taps++
		if err := cr.record(Entry{Kind: EntryLink, Name: tap, Host: n.Name}); err != nil {
			return err
		}
		if err := host.AddTap(tap, cr.bridges[netName]); err != nil {
			return err
		}
		o.Taps = append(o.Taps, tap)
	}
	if n.UEFI {
		o.OVMFVars = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(qemu.OVMFVars, o.OVMFVars); err != nil {
			return err
		}
	}
	for _, v := range n.Volumes {
		d, err := cr.volume(ctx, n, v, dir)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		o.Disks = append(o.Disks, d)
	}
	logPath := filepath.Join(dir, "qemu.log")
	if err := cr.start(Entry{Host: n.Name, App: "qemu", Log: logPath, Console: o.SerialSocket}, proc.Spec{
		Group: cr.cg.Sub(n.Name), Command: qemu.Args(n, o), Log: logPath, Dir: dir,
	}); err != nil {
		return err
	}
	cr.logf("qemu node %s: started with %s (serial console: vdc console %s)", n.Name, accel, n.Name)
	return nil
}

func (cr *creator) volume(ctx context.Context, n *spec.Node, v spec.Volume, dir string) (qemu.Disk, error) {
	vdir := dir
	for _, dc := range cr.c.DeviceClasses {
		if dc.Name == v.DeviceClass {
			vdir = filepath.Join(dc.Path, cr.Instance, n.Name)
			if err := os.MkdirAll(vdir, 0o755); err != nil {
				return qemu.Disk{}, err
			}
		}
	}
	path := filepath.Join(vdir, v.Name+".img")
	switch v.Kind {
	case spec.VolumeRaw:
		format := v.Format
		if format == "" {
			format = "qcow2"
		}
		if err := run(ctx, "qemu-img", "create", "-q", "-f", format, path, v.Size); err != nil {
			return qemu.Disk{}, err
		}
		return qemu.Disk{Name: v.Name, Path: path, Format: format, Cache: v.Cache}, nil
	case spec.VolumeImage:
		src, err := cr.imageFile(v.Image)
		if err != nil {
			return qemu.Disk{}, err
		}
		if v.CopyOnWrite {
			if err := run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", src, path); err != nil {
				return qemu.Disk{}, err
			}
		} else if err := copyFile(src, path); err != nil {
			return qemu.Disk{}, err
		}
		return qemu.Disk{Name: v.Name, Path: path, Format: "qcow2", Cache: v.Cache}, nil
	case spec.VolumeHostPath:
		return qemu.Disk{Name: v.Name, Path: v.Path, Folder: true, Writable: v.Writable}, nil
	}
	return qemu.Disk{}, fmt.Errorf("volume kind %s is not supported yet", v.Kind)
}

func (cr *creator) imageFile(name string) (string, error) {
	for _, im := range cr.c.Images {
		if im.Name != name {
			continue
		}
		if im.URL != "" || im.Compression != "" {
			return "", fmt.Errorf("vdc: Image %s: only uncompressed local files are supported (this machine downloads nothing)", name)
		}
		return filepath.Abs(im.File)
	}
	return "", fmt.Errorf("vdc: Image %s is not defined", name)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
