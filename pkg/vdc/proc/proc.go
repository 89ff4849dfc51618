// Package proc starts and stops the long-running processes of a virtual
// data center (BIRD, dnsmasq, QEMU, systemd-nspawn) so that none can be
// lost: each is started detached, in its own session, already inside a
// cgroup named after the data center, and optionally inside a named
// network namespace. Stopping a data center kills whatever is in its
// cgroups, children included, and removes the cgroups.
//
// Two sets of hierarchies are used. Routers' and QEMU's processes are
// tracked in the pids and name=systemd v1 hierarchies and the unified one
// (Detect), or in the cgroup v2 tree: enough to find and kill them, and
// they keep the other controllers' cgroups (memory, cpu, …) of whoever
// started them. An nspawn machine gets its own cgroup in every hierarchy
// (DetectAll): systemd-nspawn roots the machine's cgroup namespace where it
// was started, and a kubelet (or runc) in the machine makes its cgroups
// under that root in every controller. Machines sharing the host's cpu or
// memory root would share one /kubepods, and each kubelet would destroy
// the others' pod cgroups as orphans. A machine's memory and CPU are
// therefore not counted in the cgroups of whoever started it (a limit for
// a whole data center would go on its group, vdc-<instance>), and its cpu
// cgroup has no real-time budget: where the kernel has RT group
// scheduling, no process in a machine's cgroup gets a real-time policy.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Hierarchies are the cgroup directories processes are placed in. The first
// one is used to find processes.
type Hierarchies []string

// Detect finds the cgroup hierarchies that track processes on this
// machine, from mountinfo: the pids controller and the name=systemd
// hierarchy on v1 or hybrid hosts plus the unified (v2) mount, or just the
// v2 root on a pure v2 host.
func Detect() (Hierarchies, error) {
	tracking, _, err := detect()
	return tracking, err
}

// DetectAll finds every cgroup hierarchy of this machine: Detect's first
// (so that the first one still finds processes), then every other v1
// hierarchy (memory, cpu, cpuset, blkio, devices, freezer, …), each once.
// On a pure v2 host it is Detect's.
func DetectAll() (Hierarchies, error) {
	tracking, others, err := detect()
	return append(tracking, others...), err
}

func detect() (tracking, others Hierarchies, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	tracking, others, err = parseMountinfo(f)
	if err == nil && len(tracking) == 0 {
		err = errors.New("proc: no cgroup hierarchy is mounted")
	}
	return tracking, others, err
}

// parseMountinfo sorts the cgroup mounts of a mountinfo file into the
// tracking hierarchies (pids, name=systemd, unified, in that order) and the
// others (by mount point). A hierarchy mounted twice (same device) counts
// once, at its first mount.
func parseMountinfo(r io.Reader) (tracking, others Hierarchies, err error) {
	var pids, systemd, unified string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		dev, mnt, fstype, opts := fields[2], fields[4], fields[sep+1], strings.Split(fields[sep+3], ",")
		if fstype != "cgroup" && fstype != "cgroup2" || seen[dev] {
			continue
		}
		seen[dev] = true
		switch {
		case fstype == "cgroup2":
			unified = mnt
		case slices.Contains(opts, "pids"):
			pids = mnt
		case slices.Contains(opts, "name=systemd"):
			systemd = mnt
		default:
			others = append(others, mnt)
		}
	}
	for _, m := range []string{pids, systemd, unified} {
		if m != "" {
			tracking = append(tracking, m)
		}
	}
	sort.Strings(others)
	return tracking, others, sc.Err()
}

// Group is one cgroup path (like "vdc-dc/core/bird") in every hierarchy.
type Group struct {
	H    Hierarchies
	Path string
}

// Sub is a child group.
func (g Group) Sub(name string) Group { return Group{H: g.H, Path: filepath.Join(g.Path, name)} }

// Dirs are the group's directories, one per hierarchy.
func (g Group) Dirs() []string {
	dirs := make([]string, len(g.H))
	for i, h := range g.H {
		dirs[i] = filepath.Join(h, g.Path)
	}
	return dirs
}

// Create makes the group's directories. In a v1 cpuset hierarchy a new
// cgroup has no CPUs and no memory nodes, and no process can join it: each
// level it makes gets its parent's, parent first.
func (g Group) Create() error {
	for _, h := range g.H {
		if err := mkdirCgroup(h, g.Path); err != nil {
			return fmt.Errorf("proc: create cgroup: %w", err)
		}
	}
	return nil
}

// mkdirCgroup makes path under the hierarchy mounted at h, one level at a
// time.
func mkdirCgroup(h, path string) error {
	// The root of a v1 cpuset hierarchy has cpuset.cpus; a v2 root has not
	// (and a v2 cgroup's empty cpuset.cpus means its parent's).
	_, err := os.Stat(filepath.Join(h, "cpuset.cpus"))
	cpuset := err == nil
	dir := h
	for _, part := range strings.Split(filepath.Clean(path), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if cpuset {
			if err := inheritCpuset(parent, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// inheritCpuset gives dir its parent's CPUs and memory nodes unless it has
// some.
func inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if cur, err := os.ReadFile(filepath.Join(dir, f)); err == nil && strings.TrimSpace(string(cur)) != "" {
			continue
		}
		v, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}

// Exists reports whether the group exists in any hierarchy.
func (g Group) Exists() bool {
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// PIDs lists every process in the group and its descendants.
func (g Group) PIDs() ([]int, error) {
	var pids []int
	root := filepath.Join(g.H[0], g.Path)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	sort.Ints(pids)
	return pids, err
}

// Kill stops every process of the group. SIGTERM goes only to the roots
// of the group's process trees (those whose parent is outside the group:
// BIRD, dnsmasq, QEMU, systemd-nspawn), so that each ends cleanly on its
// own terms; systemd-nspawn turns it into an orderly shutdown of its
// machine, which a SIGTERM to the machine's systemd would not be. What is
// left after grace gets SIGKILL. It returns once the group is empty.
func (g Group) Kill(ctx context.Context, grace time.Duration) error {
	pids, err := g.PIDs()
	if err != nil || len(pids) == 0 {
		return err
	}
	termed := map[int]bool{}
	term := func(pids []int) {
		for _, p := range roots(pids) {
			if !termed[p] {
				termed[p] = true
				syscall.Kill(p, syscall.SIGTERM)
			}
		}
	}
	term(pids)
	deadline := time.Now().Add(grace)
	for {
		pids, err := g.PIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		// Orphans whose parent ended become roots: they get theirs too.
		term(pids)
		if time.Now().After(deadline) {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			return fmt.Errorf("proc: %d processes of %s survive SIGKILL: %v", len(pids), g.Path, pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// roots returns the pids whose parent is not among pids.
func roots(pids []int) []int {
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	var out []int
	for _, p := range pids {
		if !in[PPID(p)] {
			out = append(out, p)
		}
	}
	return out
}

// PPID returns the parent of pid, or 0.
func PPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// Remove deletes the group's directories in every hierarchy, deepest first
// (systemd-nspawn, and systemd, runc or a kubelet in a machine, leave
// sub-groups behind). The group must be empty.
func (g Group) Remove() error {
	var errs []error
	for _, d := range g.Dirs() {
		var dirs []string
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("proc: remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// Spec is a process to start.
type Spec struct {
	Group   Group    // the cgroup to run in (created if missing)
	Netns   string   // named network namespace, or "" for the host's
	Command []string // program and arguments
	Log     string   // file receiving stdout and stderr (appended)
	Dir     string   // working directory
	Env     []string // extra environment
}

// trampoline joins the cgroups given as arguments up to "--", then execs
// the rest, so the program and all its children start inside them.
const trampoline = `while [ "$1" != "--" ]; do echo $$ > "$1/cgroup.procs" || exit 127; shift; done; shift; exec "$@"`

// Start launches spec detached (its own session, stdin from /dev/null) and
// returns its PID. The process outlives the caller.
func Start(spec Spec) (int, error) {
	if len(spec.Command) == 0 {
		return 0, errors.New("proc: empty command")
	}
	if err := spec.Group.Create(); err != nil {
		return 0, err
	}
	args := []string{"-c", trampoline, "sh"}
	args = append(args, spec.Group.Dirs()...)
	args = append(args, "--")
	if spec.Netns != "" {
		args = append(args, "ip", "netns", "exec", spec.Netns)
	}
	args = append(args, spec.Command...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.Log != "" {
		f, err := os.OpenFile(spec.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return 0, fmt.Errorf("proc: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("proc: start %s: %w", spec.Command[0], err)
	}
	pid := cmd.Process.Pid
	// Reap it in the background while this process lives; after we exit,
	// init adopts it.
	go cmd.Wait()
	return pid, nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Children lists the direct children of pid.
func Children(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// WaitFor polls cond every interval until it holds or ctx ends.
func WaitFor(ctx context.Context, interval time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil
}
