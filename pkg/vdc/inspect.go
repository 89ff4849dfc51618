package vdc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/nspawn"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// ErrNotFound means no such instance or host.
var ErrNotFound = errors.New("not found")

// Instance is a created data center, read back from its state directory.
type Instance struct {
	Names
	Cluster *spec.Cluster
	// Entries are the ledger's, as Open read them; the live state
	// (Hosts, Start, …) reads the ledger again, since another process
	// (vdc start, the virtual BMCs) may have restarted a machine since.
	Entries []Entry
	// Complete is false when create did not finish.
	Complete bool

	mu sync.Mutex // guards Entries
}

// entries reads the ledger again and returns its entries; if it cannot be
// read, the last ones known.
func (in *Instance) entries() []Entry {
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, err := readLedger(in.StateDir()); err == nil && len(e) > 0 {
		in.Entries = e
	}
	return in.Entries
}

// recorded adds an entry this process just wrote to the ledger.
func (in *Instance) recorded(e Entry) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.Entries = append(in.Entries, e)
}

// Open reads an instance's state directory.
func Open(n Names) (*Instance, error) {
	if err := CheckInstance(n.Instance); err != nil {
		return nil, err
	}
	entries, err := readLedger(n.StateDir())
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("vdc: instance %s (%s): %w", n.Instance, n.StateDir(), ErrNotFound)
	}
	f, err := os.Open(filepath.Join(n.StateDir(), ClusterFile))
	if err != nil {
		return nil, fmt.Errorf("vdc: %w", err)
	}
	defer f.Close()
	c, err := spec.Parse(f)
	if err != nil {
		return nil, err
	}
	in := &Instance{Names: n, Cluster: c, Entries: entries}
	for _, e := range entries {
		if e.Kind == EntryDone {
			in.Complete = true
		}
	}
	return in, nil
}

// Host kinds as shown by List.
const (
	HostRouter = "netns"
	HostNspawn = "nspawn"
	HostQEMU   = "qemu"
)

// AppInfo is one process of a host.
type AppInfo struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	Log     string `json:"log"`
}

// HostInfo describes one host of an instance.
type HostInfo struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Netns     string    `json:"netns,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	Running   bool      `json:"running"`
	Addresses []string  `json:"addresses,omitempty"`
	Apps      []AppInfo `json:"apps,omitempty"`
	Console   string    `json:"console,omitempty"`
}

// Hosts lists the instance's hosts in the order of the cluster description
// (namespaces, nspawn nodes, QEMU nodes) with their live state.
func (in *Instance) Hosts() []HostInfo {
	entries := in.entries()
	var out []HostInfo
	for _, ns := range in.Cluster.Namespaces {
		out = append(out, hostInfo(entries, ns.Name, HostRouter, ""))
	}
	for _, n := range in.Cluster.NspawnNodes {
		out = append(out, hostInfo(entries, n.Name, HostNspawn, n.SMBIOS.Serial))
	}
	for _, n := range in.Cluster.Nodes {
		out = append(out, hostInfo(entries, n.Name, HostQEMU, n.SMBIOS.Serial))
	}
	return out
}

func hostInfo(entries []Entry, name, kind, serial string) HostInfo {
	h := HostInfo{Name: name, Kind: kind, Serial: serial, Running: true}
	for _, e := range entries {
		if e.Host != name {
			continue
		}
		switch e.Kind {
		case EntryNetns:
			h.Netns = e.Name
		case EntryProcess:
			// A machine started again (Start) has a later entry of the
			// same app: it replaces the earlier one.
			a := AppInfo{Name: e.App, PID: e.PID, Log: e.Log}
			if i := slices.IndexFunc(h.Apps, func(x AppInfo) bool { return x.Name == a.Name }); i >= 0 {
				h.Apps[i] = a
			} else {
				h.Apps = append(h.Apps, a)
			}
			if e.Console != "" {
				h.Console = e.Console
			}
		}
	}
	for i := range h.Apps {
		h.Apps[i].Running = proc.Alive(h.Apps[i].PID)
		h.Running = h.Running && h.Apps[i].Running
	}
	if len(h.Apps) == 0 && kind != HostRouter {
		h.Running = false
	}
	if h.Netns != "" {
		h.Addresses = addresses(h.Netns)
	}
	return h
}

// addresses lists the IPv4 addresses in a namespace, loopback excluded.
func addresses(nsName string) []string {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if a.IP.IsLoopback() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	sort.Strings(out)
	return out
}

func (in *Instance) find(name string) (HostInfo, error) {
	for _, h := range in.Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	return HostInfo{}, fmt.Errorf("vdc: host %s in instance %s: %w", name, in.Instance, ErrNotFound)
}

// ExecArgs is the host command line that runs argv inside a host: in its
// network namespace for a NetworkNamespace, in all its namespaces (as if
// logged in) for an nspawn node. QEMU nodes have only their console.
func (in *Instance) ExecArgs(name string, argv []string) ([]string, error) {
	h, err := in.find(name)
	if err != nil {
		return nil, err
	}
	switch h.Kind {
	case HostRouter:
		return append([]string{"ip", "netns", "exec", h.Netns}, argv...), nil
	case HostNspawn:
		if len(h.Apps) == 0 {
			return nil, fmt.Errorf("vdc: %s: %w", name, nspawn.ErrNotRunning)
		}
		leader, err := nspawn.Leader(h.Apps[0].PID)
		if err != nil {
			return nil, fmt.Errorf("vdc: %s: %w", name, err)
		}
		return nspawn.EnterArgs(leader, argv), nil
	}
	return nil, fmt.Errorf("vdc: %s is a QEMU node: use `vdc console %s`", name, name)
}

// Console returns where a host's console is: a log file for an nspawn
// node (read-only), a UNIX socket for a QEMU node's serial port.
func (in *Instance) Console(name string) (path string, socket bool, err error) {
	h, err := in.find(name)
	if err != nil {
		return "", false, err
	}
	switch h.Kind {
	case HostNspawn:
		return h.Console, false, nil
	case HostQEMU:
		return h.Console, true, nil
	}
	return "", false, fmt.Errorf("vdc: %s is a network namespace: it has no console; use `vdc exec` or `vdc shell`", name)
}

// Reset presses a QEMU machine's reset button (QMP system_reset): it boots
// again from its firmware, as after a power cycle.
func (in *Instance) Reset(name string) error {
	h, err := in.find(name)
	if err != nil {
		return err
	}
	if h.Kind != HostQEMU {
		return fmt.Errorf("vdc: %s is not a QEMU machine", name)
	}
	_, err = qemu.QMP(filepath.Join(in.HostDir(name), "qmp.sock"), "system_reset", nil)
	return err
}

// NetnsOf returns the network namespace of a host.
func (in *Instance) NetnsOf(name string) (string, error) {
	h, err := in.find(name)
	if err != nil {
		return "", err
	}
	if h.Netns == "" {
		return "", fmt.Errorf("vdc: %s has no network namespace", name)
	}
	return h.Netns, nil
}

// NetnsPath is the namespace file of a host, for tools that take a path.
func NetnsPath(ns string) string { return host.NetnsPath(ns) }
