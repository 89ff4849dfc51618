// Package rootfs builds and shares the Debian trees that nspawn nodes boot.
// A tree is made once with debootstrap from Debian's packages and cached
// under a key derived from everything that shapes it (suite, variant,
// mirror, packages); concurrent builders of the same key wait on a file
// lock instead of racing. Each machine then boots from its own overlayfs
// mount (the cached tree as the read-only lower layer), so a machine costs
// only what it writes.
package rootfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCacheDir holds the cached trees.
const DefaultCacheDir = "/var/cache/vdc/rootfs"

// Spec is what a tree is made of.
type Spec struct {
	Suite    string
	Variant  string
	Mirror   string
	Packages []string
}

// setupVersion changes when the post-debootstrap customization changes, so
// that old cached trees are not reused.
const setupVersion = "2"

// Key names the cached tree of s.
func (s Spec) Key() string {
	pkgs := slices.Clone(s.Packages)
	sort.Strings(pkgs)
	pkgs = slices.Compact(pkgs)
	h := sha256.Sum256([]byte(strings.Join([]string{setupVersion, s.Suite, s.Variant, s.Mirror, strings.Join(pkgs, ",")}, "\n")))
	return s.Suite + "-" + hex.EncodeToString(h[:6])
}

// AptMirror returns the Debian mirror this machine's APT uses for suite,
// read from /etc/apt/sources.list and sources.list.d (both the one-line
// and the deb822 formats), so debootstrap fetches from where apt-get does.
func AptMirror(root, suite string) (string, error) {
	var files []string
	files = append(files, filepath.Join(root, "etc/apt/sources.list"))
	more, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*"))
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var m string
		if strings.HasSuffix(f, ".sources") {
			m = mirrorDeb822(string(data), suite)
		} else if strings.HasSuffix(f, ".list") {
			m = mirrorOneLine(string(data), suite)
		}
		if m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("rootfs: no APT source for suite %s in %s/etc/apt: set the Rootfs mirror", suite, strings.TrimSuffix(root, "/"))
}

// mirrorOneLine finds "deb [opts] URI SUITE components" for suite.
func mirrorOneLine(text, suite string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite && isHTTP(f[0]) {
			return f[0]
		}
	}
	return ""
}

// mirrorDeb822 finds a stanza of type deb whose Suites include suite.
func mirrorDeb822(text, suite string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(stanza))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if fields["enabled"] == "no" || !slices.Contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		if !slices.Contains(strings.Fields(fields["suites"]), suite) {
			continue
		}
		for _, u := range strings.Fields(fields["uris"]) {
			if isHTTP(u) {
				return u
			}
		}
	}
	return ""
}

func isHTTP(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
}

// Ensure returns the directory of the tree for s under cacheDir, building
// it first if needed. built tells whether this call built it.
func Ensure(ctx context.Context, cacheDir string, s Spec, log io.Writer) (dir string, built bool, err error) {
	if s.Mirror == "" {
		m, err := AptMirror("/", s.Suite)
		if err != nil {
			return "", false, err
		}
		s.Mirror = m
	}
	cacheDir, err = filepath.Abs(cacheDir)
	if err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	key := s.Key()
	dir = filepath.Join(cacheDir, key)
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("rootfs: lock %s: %w", key, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, ".vdc-complete")); err == nil {
		return dir, false, nil
	}
	tmp := dir + ".build"
	if err := removeTree(tmp); err != nil {
		return "", false, err
	}
	if err := build(ctx, tmp, s, log); err != nil {
		removeTree(tmp)
		return "", false, err
	}
	if err := removeTree(dir); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	return dir, true, nil
}

func build(ctx context.Context, dir string, s Spec, log io.Writer) error {
	start := time.Now()
	args := []string{"--variant=" + s.Variant}
	if s.Variant == "-" {
		args = nil
	}
	// Downloaded packages are kept beside the trees, so that a tree with
	// one more package costs its download only.
	debs := filepath.Join(filepath.Dir(dir), "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	args = append(args, "--cache-dir="+debs)
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	args = append(args, s.Suite, dir, s.Mirror)
	fmt.Fprintf(log, "rootfs: debootstrap %s (this takes about a minute)\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rootfs: debootstrap %s: %w (see the output above; a failed build is removed)", s.Suite, err)
	}
	if err := customize(dir); err != nil {
		return err
	}
	fmt.Fprintf(log, "rootfs: %s built in %s\n", s.Suite, time.Since(start).Round(time.Second))
	return os.WriteFile(filepath.Join(dir, ".vdc-complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// customize makes the shared tree fit to boot many machines: an empty
// machine-id (each machine writes its own), a root login without password
// on the console, and no services that would wait for hardware.
func customize(dir string) error {
	steps := []struct {
		path string
		data string
	}{
		{"etc/machine-id", ""},
		{"etc/hostname", "localhost\n"},
		{"etc/securetty", ""},
		{"etc/systemd/system/console-getty.service.d/autologin.conf",
			"[Service]\nExecStart=\nExecStart=-/sbin/agetty --noclear --autologin root --keep-baud console 115200,38400,9600 $TERM\n"},
	}
	for _, s := range steps {
		p := filepath.Join(dir, s.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		if err := os.WriteFile(p, []byte(s.data), 0o644); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	// Root without password, for `vdc console` and nsenter shells.
	shadow := filepath.Join(dir, "etc/shadow")
	data, err := os.ReadFile(shadow)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "root:") {
			f := strings.Split(l, ":")
			if len(f) > 1 {
				f[1] = ""
				lines[i] = strings.Join(f, ":")
			}
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")), 0o640)
}

// removeTree deletes dir after unmounting anything left mounted inside it
// (debootstrap mounts /proc and /sys in the tree while it works).
func removeTree(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := UnmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("rootfs: remove %s: %w", dir, err)
	}
	return nil
}

// MountsUnder lists mount points at or below dir, deepest first.
func MountsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return slices.Compact(mps), nil
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// UnmountUnder unmounts everything at or below dir (lazily when busy).
func UnmountUnder(dir string) error {
	mps, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Overlay is one machine's view of a cached tree: writes go to Upper, the
// merged tree is mounted at Root.
type Overlay struct {
	Lower, Upper, Work, Root string
}

// NewOverlay lays out an overlay for lower under dir.
func NewOverlay(lower, dir string) Overlay {
	return Overlay{Lower: lower, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Root: filepath.Join(dir, "root")}
}

// Mount creates the directories and mounts the overlay.
func (o Overlay) Mount() error {
	for _, d := range []string{o.Upper, o.Work, o.Root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", o.Lower, o.Upper, o.Work)
	if err := unix.Mount("overlay", o.Root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("rootfs: mount overlay on %s: %w", o.Root, err)
	}
	return nil
}
