package vdc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// A machine's power: Stop shuts an nspawn machine down (cleanly, or at
// once with kill: a power cut), Start boots it again from the same root
// (its disk), in the same network namespace (its NICs stay on the
// bridges). What the machine wrote survives, as on a real server.

// Stop powers an nspawn machine off. Without kill, systemd in it shuts
// down in order (SIGTERM to systemd-nspawn), with StopGrace before the
// rest is killed; with kill every process of the machine gets SIGKILL at
// once, as if its power was cut. Stopping a stopped machine does nothing.
func (in *Instance) Stop(ctx context.Context, name string, kill bool) error {
	n := in.nspawnNode(name)
	if n == nil {
		return in.notNspawn(name)
	}
	g, err := in.machineGroup(name)
	if err != nil {
		return err
	}
	grace := StopGrace
	if kill {
		grace = 0
	}
	return g.Kill(ctx, grace)
}

// Start boots a stopped nspawn machine. Starting a running one is an
// error.
func (in *Instance) Start(ctx context.Context, name string) error {
	n := in.nspawnNode(name)
	if n == nil {
		return in.notNspawn(name)
	}
	h, err := in.find(name)
	if err != nil {
		return err
	}
	if h.Running {
		return fmt.Errorf("vdc: %s is running", name)
	}
	var last Entry
	for _, e := range slices.Backward(in.entries()) {
		if e.Host == name && e.Kind == EntryProcess {
			last = e
			break
		}
	}
	if last.Path == "" || h.Netns == "" {
		return fmt.Errorf("vdc: %s was never started by create", name)
	}
	if mps, err := rootfs.MountsUnder(last.Path); err != nil || len(mps) == 0 {
		return fmt.Errorf("vdc: %s: its root %s is not mounted", name, last.Path)
	}
	if err := nspawn.PrepareRuntimeDir(mountTmpfs); err != nil {
		return err
	}
	g, err := in.machineGroup(name)
	if err != nil {
		return err
	}
	// nspawn leaves its payload and supervisor groups behind, and what ran
	// in the machine (runc, a kubelet) its own.
	if err := g.Kill(ctx, 0); err != nil {
		return err
	}
	g.Remove() // best effort: Create below reuses what is left
	if err := g.Create(); err != nil {
		return err
	}
	l, err := openLedger(in.StateDir())
	if err != nil {
		return err
	}
	defer l.close()
	if err := os.MkdirAll(nspawn.ContainerdDir(in.HostDir(name)), 0o711); err != nil {
		return err
	}
	pid, err := proc.Start(proc.Spec{Group: g, Command: nspawn.Args(n, last.Path, host.NetnsPath(h.Netns), in.HostDir(name)),
		Log: last.Log, Dir: in.HostDir(name), Env: nspawn.Env})
	if err != nil {
		return err
	}
	last.PID = pid
	if err := l.record(last); err != nil {
		return err
	}
	in.recorded(last)
	return nil
}

// WaitBootedHost waits until the machine's systemd finished booting.
func (in *Instance) WaitBootedHost(ctx context.Context, name string) error {
	return proc.WaitFor(ctx, 200*time.Millisecond, func() bool { return Booted(in.SystemState(ctx, name)) })
}

// machineGroup is an nspawn machine's cgroup, in every hierarchy.
func (in *Instance) machineGroup(name string) (proc.Group, error) {
	all, err := proc.DetectAll()
	if err != nil {
		return proc.Group{}, err
	}
	return proc.Group{H: all, Path: in.MachineCgroup(name)}, nil
}

func (in *Instance) nspawnNode(name string) *spec.NspawnNode {
	for _, n := range in.Cluster.NspawnNodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (in *Instance) notNspawn(name string) error {
	if _, err := in.find(name); err != nil {
		return err
	}
	return fmt.Errorf("vdc: %s is not an nspawn machine: only those can be stopped and started", name)
}

// PowerState reports whether a machine is powered on: an nspawn machine
// whose systemd-nspawn runs, a QEMU machine whose CPUs run (QMP
// query-status). QEMU machines are powered off by pausing them (see
// PowerOff), so a paused one reads as off.
func (in *Instance) PowerState(ctx context.Context, name string) (on bool, err error) {
	h, err := in.find(name)
	if err != nil {
		return false, err
	}
	switch h.Kind {
	case HostNspawn:
		return h.Running, nil
	case HostQEMU:
		if !h.Running {
			return false, nil
		}
		out, err := qemu.QMP(filepath.Join(in.HostDir(name), "qmp.sock"), "query-status", nil)
		if err != nil {
			return false, fmt.Errorf("vdc: %s: %w", name, err)
		}
		var st struct {
			Running bool `json:"running"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return false, fmt.Errorf("vdc: %s: query-status: %w", name, err)
		}
		return st.Running, nil
	}
	return false, fmt.Errorf("vdc: %s is a network namespace: it has no power", name)
}

// PowerOn switches a machine on; one already on is left alone. An nspawn
// machine boots again (Start); a QEMU machine is reset and resumed, so it
// boots from its firmware as after a power cycle.
func (in *Instance) PowerOn(ctx context.Context, name string) error {
	on, err := in.PowerState(ctx, name)
	if err != nil || on {
		return err
	}
	if in.nspawnNode(name) != nil {
		return in.Start(ctx, name)
	}
	sock := filepath.Join(in.HostDir(name), "qmp.sock")
	if _, err := qemu.QMP(sock, "system_reset", nil); err != nil {
		return fmt.Errorf("vdc: %s: %w", name, err)
	}
	if _, err := qemu.QMP(sock, "cont", nil); err != nil {
		return fmt.Errorf("vdc: %s: %w", name, err)
	}
	return nil
}

// PowerOff switches a machine off; one already off is left alone. An
// nspawn machine is stopped (Stop: cleanly unless force). A QEMU machine's
// CPUs are paused (QMP stop), gracefully or not: its process, console and
// disks stay, and PowerOn boots it afresh.
func (in *Instance) PowerOff(ctx context.Context, name string, force bool) error {
	on, err := in.PowerState(ctx, name)
	if err != nil || !on {
		return err
	}
	if in.nspawnNode(name) != nil {
		return in.Stop(ctx, name, force)
	}
	if _, err := qemu.QMP(filepath.Join(in.HostDir(name), "qmp.sock"), "stop", nil); err != nil {
		return fmt.Errorf("vdc: %s: %w", name, err)
	}
	return nil
}

// StartService starts a long-running program that serves the data center
// from the host (as the virtual BMCs do) and records it as one more app of
// host, so that list shows it and destroy stops it with the rest. It runs
// in the host's namespaces, in the instance's cgroup; its output goes to
// app.log in the host's directory.
func (in *Instance) StartService(host, app string, argv []string) (int, error) {
	if _, err := in.find(host); err != nil {
		return 0, err
	}
	hier, err := proc.Detect()
	if err != nil {
		return 0, err
	}
	dir := in.HostDir(host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	l, err := openLedger(in.StateDir())
	if err != nil {
		return 0, err
	}
	defer l.close()
	e := Entry{Kind: EntryProcess, Host: host, App: app, Log: filepath.Join(dir, app+".log")}
	g := proc.Group{H: hier, Path: in.CgroupRoot()}.Sub(host).Sub(app)
	pid, err := proc.Start(proc.Spec{Group: g, Command: argv, Log: e.Log, Dir: dir})
	if err != nil {
		return 0, err
	}
	e.PID = pid
	if err := l.record(e); err != nil {
		return 0, err
	}
	in.recorded(e)
	return pid, nil
}
