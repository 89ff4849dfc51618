// Package deb inspects and installs Debian packages with the real dpkg
// tools. Installer is how neco-worker installs a new neco package:
// SystemInstaller on a boot server (dpkg runs in a transient systemd unit,
// outside the worker's cgroup, so that the package's maintainer scripts can
// restart the worker), RootInstaller into a scratch root for tests.
package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotInstalled reports a package dpkg does not know as installed.
var ErrNotInstalled = errors.New("deb: package not installed")

// ErrInProgress reports a package dpkg is still unpacking or configuring
// (or left half-done): ask again once dpkg has finished.
var ErrInProgress = errors.New("deb: package installation in progress or unfinished")

// Info is a package's identity from its control file.
type Info struct {
	Package      string
	Version      string
	Architecture string
}

// Inspect reads the control fields of the .deb at path, which also checks
// that it is a well-formed Debian package.
func Inspect(ctx context.Context, path string) (Info, error) {
	out, err := run(ctx, "dpkg-deb", "--show", "--showformat", "${Package}\t${Version}\t${Architecture}\n", path)
	if err != nil {
		return Info{}, fmt.Errorf("deb: inspect %s: %w", filepath.Base(path), err)
	}
	f := strings.Split(strings.TrimSpace(out), "\t")
	if len(f) != 3 {
		return Info{}, fmt.Errorf("deb: inspect %s: unexpected output %q", filepath.Base(path), out)
	}
	return Info{Package: f[0], Version: f[1], Architecture: f[2]}, nil
}

// Installer installs packages and reports installed versions.
type Installer interface {
	// Install installs (or upgrades to) the .deb at path.
	Install(ctx context.Context, path string) error
	// InstalledVersion returns the installed version of pkg, or
	// ErrNotInstalled.
	InstalledVersion(ctx context.Context, pkg string) (string, error)
}

// SystemInstaller installs into the running system with
// `systemd-run --wait --collect dpkg -i`, keeping the configuration files
// an operator changed. dpkg's output goes to a log file under LogDir
// (default /var/log/neco), not through the caller's pipes: the caller may
// be stopped by the package's own maintainer scripts while dpkg runs, and
// dpkg must not lose its standard output then.
type SystemInstaller struct {
	LogDir string
}

// Install implements Installer. When the package restarts the caller's own
// service, ctx is cancelled by the caller's shutdown; dpkg carries on in
// its transient unit regardless.
func (s SystemInstaller) Install(ctx context.Context, path string) error {
	dir := s.LogDir
	if dir == "" {
		dir = "/var/log/neco"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("deb: install %s: %w", filepath.Base(path), err)
	}
	unit := fmt.Sprintf("neco-dpkg-%d", time.Now().UnixNano())
	logFile := filepath.Join(dir, unit+".log")
	_, err := run(ctx, "systemd-run", "--wait", "--collect", "--quiet", "--unit", unit,
		"--setenv=DEBIAN_FRONTEND=noninteractive",
		"--property=StandardOutput=file:"+logFile, "--property=StandardError=file:"+logFile,
		"dpkg", "-i", "--force-confdef", "--force-confold", path)
	if err != nil {
		out, _ := os.ReadFile(logFile)
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		return fmt.Errorf("deb: install %s: %w (dpkg output in %s: %s)", filepath.Base(path), err, logFile, strings.TrimSpace(string(out)))
	}
	os.Remove(logFile)
	return nil
}

// InstalledVersion implements Installer.
func (SystemInstaller) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	return installedVersion(ctx, "", pkg)
}

// RootInstaller installs into a scratch root directory with its own dpkg
// database (dpkg --instdir/--admindir), running maintainer scripts outside
// a chroot with DPKG_ROOT set, as Debian's chrootless bootstrapping does.
// The package's scripts must honour DPKG_ROOT (neco's do: they leave
// services alone there).
type RootInstaller struct {
	Root string
}

// AdminDir is the dpkg database of the scratch root.
func (r RootInstaller) AdminDir() string { return filepath.Join(r.Root, "var/lib/dpkg") }

// Init creates an empty dpkg database in the root; it is idempotent.
func (r RootInstaller) Init() error {
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(r.AdminDir(), d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"status", "available"} {
		p := filepath.Join(r.AdminDir(), f)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// Install implements Installer.
func (r RootInstaller) Install(ctx context.Context, path string) error {
	if err := r.Init(); err != nil {
		return fmt.Errorf("deb: init scratch root: %w", err)
	}
	_, err := run(ctx, "dpkg", "--instdir="+r.Root, "--admindir="+r.AdminDir(),
		"--force-script-chrootless", "--force-not-root", "--force-depends", "--force-confdef", "--force-confold", "-i", path)
	if err != nil {
		return fmt.Errorf("deb: install %s into %s: %w", filepath.Base(path), r.Root, err)
	}
	return nil
}

// InstalledVersion implements Installer.
func (r RootInstaller) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	return installedVersion(ctx, r.AdminDir(), pkg)
}

// Remove purges pkg from the scratch root (maintainer scripts run as in
// Install).
func (r RootInstaller) Remove(ctx context.Context, pkg string) error {
	_, err := run(ctx, "dpkg", "--instdir="+r.Root, "--admindir="+r.AdminDir(),
		"--force-script-chrootless", "--force-not-root", "--purge", pkg)
	return err
}

func installedVersion(ctx context.Context, admindir, pkg string) (string, error) {
	args := []string{"-W", "-f", "${db:Status-Status}\t${Version}\n", pkg}
	if admindir != "" {
		args = append([]string{"--admindir=" + admindir}, args...)
	}
	out, err := run(ctx, "dpkg-query", args...)
	if err != nil {
		if strings.Contains(err.Error(), "no packages found") {
			return "", fmt.Errorf("%w: %s", ErrNotInstalled, pkg)
		}
		return "", fmt.Errorf("deb: query %s: %w", pkg, err)
	}
	status, version, _ := strings.Cut(strings.TrimSpace(out), "\t")
	switch status {
	case "installed":
	case "not-installed", "config-files":
		return "", fmt.Errorf("%w: %s is %s", ErrNotInstalled, pkg, status)
	default: // unpacked, half-configured, half-installed, triggers-*
		return "", fmt.Errorf("%w: %s is %s", ErrInProgress, pkg, status)
	}
	return version, nil
}

// run runs a command and returns its standard output; a failure carries
// the command's standard error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return stdout.String(), fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return stdout.String(), nil
}
