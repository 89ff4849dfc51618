// Package vdc builds a virtual data center on this machine from a cluster
// description (package spec) and takes it down again: Linux bridges for
// Networks, network namespaces with veth pairs for NetworkNamespaces and
// nspawn nodes, taps for QEMU nodes, and the processes (BIRD, dnsmasq,
// systemd-nspawn, QEMU) that run in them.
//
// Every data center is an instance with a short name. Everything it makes
// on the host carries that name: links and namespaces start with
// "<instance>-", processes run under the cgroup "vdc-<instance>", files and
// mounts live under its state directory, and each step is written to a
// ledger in that directory before it is taken. Destroy works from the
// ledger and from those names, so it also cleans up after a crash.
package vdc

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
)

// DefaultStateRoot holds one state directory per instance.
const DefaultStateRoot = "/var/lib/vdc"

// DefaultInstance is the instance name when none is given.
const DefaultInstance = "vdc"

var (
	reInstance = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
	// reGenerated matches the suffixes of generated link names.
	reGenerated = regexp.MustCompile(`^(v|t|br)[0-9]+$`)
)

// CheckInstance validates an instance name: 1-6 lower-case letters and
// digits, starting with a letter, so that "<instance>-<name>" fits Linux
// interface names.
func CheckInstance(name string) error {
	if !reInstance.MatchString(name) {
		return fmt.Errorf("vdc: instance name %q: want 1-6 lower-case letters or digits, starting with a letter", name)
	}
	return nil
}

// Names derives every host-side name of one instance.
type Names struct {
	Instance  string
	StateRoot string
}

// Prefix starts every link and namespace name of the instance.
func (n Names) Prefix() string { return n.Instance + "-" }

// StateDir is the instance's directory.
func (n Names) StateDir() string { return filepath.Join(n.StateRoot, n.Instance) }

// Netns is the network namespace of a host (a NetworkNamespace or node).
func (n Names) Netns(host string) string { return n.Prefix() + host }

// CgroupRoot is the cgroup that holds every process of the instance.
func (n Names) CgroupRoot() string { return "vdc-" + n.Instance }

// MachineCgroup is the cgroup of an nspawn machine, under CgroupRoot. A
// machine has it in every hierarchy (proc.DetectAll), routers and QEMU
// nodes only in those that track processes (proc.Detect).
func (n Names) MachineCgroup(machine string) string { return n.CgroupRoot() + "/" + machine }

// Bridge names the bridge of the i-th Network: "<instance>-<network>" when
// that fits in 15 bytes and cannot clash with a generated name, else
// "<instance>-br<i>".
func (n Names) Bridge(network string, i int) string {
	if name := n.Prefix() + network; len(name) <= 15 && !reGenerated.MatchString(network) {
		return name
	}
	return n.Prefix() + "br" + strconv.Itoa(i)
}

// Veth names the host end of the i-th veth pair.
func (n Names) Veth(i int) string { return n.Prefix() + "v" + strconv.Itoa(i) }

// Tap names the i-th tap device.
func (n Names) Tap(i int) string { return n.Prefix() + "t" + strconv.Itoa(i) }

// HostDir is the directory of one host's files (logs, overlay, sockets).
func (n Names) HostDir(host string) string { return filepath.Join(n.StateDir(), "hosts", host) }
