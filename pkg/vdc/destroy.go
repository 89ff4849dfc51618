package vdc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// StopGrace is how long processes get between SIGTERM and SIGKILL.
const StopGrace = 10 * time.Second

// Destroy removes everything the instance made: its processes (by cgroup),
// mounts, links, namespaces, cgroups and state directory. It works from the
// ledger and also sweeps by name, so it is safe after a crash or a partial
// create, and running it twice is harmless.
func Destroy(ctx context.Context, n Names) error {
	if err := CheckInstance(n.Instance); err != nil {
		return err
	}
	entries, lerr := readLedger(n.StateDir())
	var errs []error
	if lerr != nil {
		errs = append(errs, lerr)
	}
	// Every hierarchy: machines have their groups in all of them, and
	// whatever ran in a machine (runc, a kubelet) left sub-groups there.
	all, err := proc.DetectAll()
	if err != nil {
		return err
	}
	cg := proc.Group{H: all, Path: n.CgroupRoot()}
	if err := cg.Kill(ctx, StopGrace); err != nil {
		errs = append(errs, err)
	}

	// Mounts: the recorded ones and anything left under the state dir.
	for _, e := range slices.Backward(entries) {
		if e.Kind == EntryMount {
			if err := rootfs.UnmountUnder(e.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := rootfs.UnmountUnder(n.StateDir()); err != nil {
		errs = append(errs, err)
	}

	// Links: deleting a veth's host end deletes its peer too.
	links := map[string]bool{}
	for _, e := range entries {
		if e.Kind == EntryLink || e.Kind == EntryBridge {
			links[e.Name] = true
		}
	}
	swept, err := host.ListLinks(n.Prefix())
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range swept {
		links[l] = true
	}
	// Ports before bridges, so bridges go away with nothing attached.
	names := make([]string, 0, len(links))
	for l := range links {
		names = append(names, l)
	}
	slices.SortFunc(names, func(a, b string) int { return isBridge(entries, a) - isBridge(entries, b) })
	for _, l := range names {
		if err := host.DeleteLink(l); err != nil {
			errs = append(errs, err)
		}
	}

	nss := map[string]bool{}
	for _, e := range entries {
		if e.Kind == EntryNetns {
			nss[e.Name] = true
		}
	}
	sweptNS, err := host.ListNetns(n.Prefix())
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range sweptNS {
		nss[s] = true
	}
	for s := range nss {
		if err := host.DeleteNetns(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}

	if err := cg.Remove(); err != nil {
		errs = append(errs, err)
	}
	// Volumes placed in device classes live outside the state directory.
	if data, err := os.ReadFile(filepath.Join(n.StateDir(), ClusterFile)); err == nil {
		if c, err := spec.Parse(strings.NewReader(string(data))); err == nil {
			for _, dc := range c.DeviceClasses {
				os.RemoveAll(filepath.Join(dc.Path, n.Instance))
			}
		}
	}
	if err := releaseRuntimeDir(nspawn.RuntimeDir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(n.StateDir()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isBridge(entries []Entry, name string) int {
	for _, e := range entries {
		if e.Kind == EntryBridge && e.Name == name {
			return 1
		}
	}
	return 0
}

// releaseRuntimeDir unmounts the nspawn runtime tmpfs at dir when no
// systemd-nspawn runs on the host any more (ours or anybody's): its content
// only matters to running machines, and whoever starts the next one mounts
// it again (nspawn.PrepareRuntimeDir). Whoever mounted it, an instance
// whose ledger was lost included, it does not outlive the last machine.
func releaseRuntimeDir(dir string) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "systemd-nspawn" {
			if pid, err := strconv.Atoi(e.Name()); err == nil && proc.Alive(pid) {
				return nil
			}
		}
	}
	return rootfs.UnmountUnder(dir)
}

// Leftovers lists what of the instance still exists on the host: processes,
// cgroups (in every hierarchy), links, namespaces, mounts and the state
// directory. Empty after a successful Destroy.
func Leftovers(n Names) ([]string, error) {
	var out []string
	all, err := proc.DetectAll()
	if err != nil {
		return nil, err
	}
	cg := proc.Group{H: all, Path: n.CgroupRoot()}
	pids, err := cg.PIDs()
	if err != nil {
		return nil, err
	}
	for _, p := range pids {
		out = append(out, fmt.Sprintf("process %d", p))
	}
	for _, d := range cg.Dirs() {
		if _, err := os.Stat(d); err == nil {
			out = append(out, "cgroup "+d)
		}
	}
	links, err := host.ListLinks(n.Prefix())
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		out = append(out, "link "+l)
	}
	nss, err := host.ListNetns(n.Prefix())
	if err != nil {
		return nil, err
	}
	for _, s := range nss {
		out = append(out, "netns "+s)
	}
	mps, err := rootfs.MountsUnder(n.StateDir())
	if err != nil {
		return nil, err
	}
	for _, m := range mps {
		out = append(out, "mount "+m)
	}
	if _, err := os.Stat(n.StateDir()); err == nil {
		out = append(out, "directory "+n.StateDir())
	}
	return out, nil
}
