package deb_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/testutil"
)

// buildPackage builds the neco package of version with debian/build.sh
// from the CD programs (compiled here; `make deb` adds every other one).
func buildPackage(t *testing.T, bin, version string) string {
	t.Helper()
	out := t.TempDir()
	script, _ := filepath.Abs("../../debian/build.sh")
	cmd := exec.Command(script, version, bin, out)
	cmd.Env = append(os.Environ(), "DEB_COMPRESS=gzip")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	return filepath.Join(out, "neco_"+version+"_amd64.deb")
}

func TestPackage(t *testing.T) {
	testutil.RequireCommands(t, "dpkg", "dpkg-deb", "fakeroot", "lintian", "systemctl", "strip")
	ctx := context.Background()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin+"/",
		"github.com/openneco/neco/cmd/neco", "github.com/openneco/neco/cmd/neco-updater", "github.com/openneco/neco/cmd/neco-worker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	old := buildPackage(t, bin, "2025.03.01-1")
	cur := buildPackage(t, bin, "2025.03.10-2")

	t.Run("lintian", func(t *testing.T) {
		out, err := exec.Command("lintian", "--fail-on", "error,warning", cur).CombinedOutput()
		if err != nil {
			t.Errorf("lintian: %v\n%s", err, out)
		}
	})

	info, err := deb.Inspect(ctx, cur)
	if err != nil || info != (deb.Info{Package: "neco", Version: "2025.03.10-2", Architecture: "amd64"}) {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}

	r := deb.RootInstaller{Root: t.TempDir()}
	if _, err := r.InstalledVersion(ctx, "neco"); !errors.Is(err, deb.ErrNotInstalled) {
		t.Errorf("empty root: err = %v, want ErrNotInstalled", err)
	}
	if err := r.Install(ctx, old); err != nil {
		t.Fatal(err)
	}
	wants := filepath.Join(r.Root, "etc/systemd/system/multi-user.target.wants")
	for _, u := range []string{"neco-updater.service", "neco-worker.service"} {
		if _, err := os.Lstat(filepath.Join(wants, u)); err != nil {
			t.Errorf("%s not enabled by the first installation: %v", u, err)
		}
	}

	// The operator disables the updater on this server; an upgrade keeps that.
	if err := os.Remove(filepath.Join(wants, "neco-updater.service")); err != nil {
		t.Fatal(err)
	}
	if err := r.Install(ctx, cur); err != nil {
		t.Fatalf("upgrade over an older version: %v", err)
	}
	if err := r.Install(ctx, cur); err != nil {
		t.Fatalf("reinstalling the same version: %v", err)
	}
	if v, err := r.InstalledVersion(ctx, "neco"); err != nil || v != "2025.03.10-2" {
		t.Errorf("installed = %q, %v", v, err)
	}
	if _, err := os.Lstat(filepath.Join(wants, "neco-updater.service")); err == nil {
		t.Error("upgrade re-enabled a unit the operator disabled")
	}
	if _, err := os.Lstat(filepath.Join(wants, "neco-worker.service")); err != nil {
		t.Error("upgrade lost the worker's enablement")
	}

	files := []struct {
		path string
		mode os.FileMode
	}{
		{"usr/bin/neco", 0o755},
		{"usr/bin/neco-updater", 0o755},
		{"usr/bin/neco-worker", 0o755},
		{"lib/systemd/system/neco-updater.service", 0o644},
		{"lib/systemd/system/neco-worker.service", 0o644},
		{"usr/share/neco/sabakan.yml", 0o644},
		{"usr/share/neco/dhcp.json", 0o644},
		{"usr/share/neco/config.yml.example", 0o644},
		{"usr/share/bash-completion/completions/neco", 0o644},
		{"usr/share/doc/neco/copyright", 0o644},
		{"usr/share/doc/neco/changelog.Debian.gz", 0o644},
		{"usr/share/lintian/overrides/neco", 0o644},
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(r.Root, f.path))
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
	out, err := exec.Command(filepath.Join(r.Root, "usr/bin/neco"), "status", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "neco recover") {
		t.Errorf("installed neco does not run: %v\n%s", err, out)
	}

	units := map[string][]string{
		"neco-updater.service": {"ExecStart=/usr/bin/neco-updater --config /etc/neco/config.yml", "Restart=on-failure", "ConditionPathExists=/etc/neco/config.yml", "KillSignal=SIGTERM", "WantedBy=multi-user.target"},
		"neco-worker.service":  {"ExecStart=/usr/bin/neco-worker --config /etc/neco/config.yml", "Restart=on-failure", "ConditionPathExists=/etc/neco/rack", "TimeoutStopSec=60s"},
	}
	for u, lines := range units {
		data, err := os.ReadFile(filepath.Join(r.Root, "lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.Contains(string(data), "\n"+l+"\n") {
				t.Errorf("%s lacks %q", u, l)
			}
		}
	}

	if err := r.Remove(ctx, "neco"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Root, "usr/bin/neco")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("usr/bin/neco left after purge: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(wants, "neco-worker.service")); err == nil {
		t.Error("removal left the worker enabled")
	}
	if _, err := r.InstalledVersion(ctx, "neco"); !errors.Is(err, deb.ErrNotInstalled) {
		t.Errorf("after purge: err = %v", err)
	}
}
