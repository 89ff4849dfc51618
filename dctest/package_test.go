//go:build dctest

package dctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// packagePrograms are the project's programs shipped in the suite's
// package, with bin/etcd and bin/etcdctl. Vault is left out to keep the
// suite short (it is the largest file of the release package, built by
// `make deb`); everything else is what a release ships.
var packagePrograms = []string{"neco", "neco-updater", "neco-worker", "sabakan", "sabactl", "sabakan-state-setter",
	"node-health-agent", "bgp-node-agent"}

// buildPackage builds neco_0.0.0~dctest_amd64.deb with debian/build.sh
// into dir and returns its path.
func buildPackage(t *testing.T, dir string) string {
	t.Helper()
	testutil.RequireCommands(t, "etcd", "etcdctl", "dpkg-deb", "fakeroot")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// One go build for all: packages compile once, links run in parallel.
	// build.sh strips the binaries.
	args := []string{"build", "-o", bin + "/"}
	for _, p := range packagePrograms {
		args = append(args, "../cmd/"+p)
	}
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, p := range []string{"etcd", "etcdctl"} {
		src, _ := exec.LookPath(p)
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, p), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("../debian/build.sh", "0.0.0~dctest", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("debian/build.sh: %v\n%s", err, out)
	}
	return filepath.Join(dir, "neco_0.0.0~dctest_amd64.deb")
}

// TestBootServerPackage installs the neco Debian package, built from this
// tree by debian/build.sh, with dpkg into the three boot servers, under
// their systemd: the daemons are enabled but stay down until `neco setup`
// writes /etc/neco/config.yml (their units' condition); removing the
// package takes everything away again.
func TestBootServerPackage(t *testing.T) {
	requireHost(t)
	pkgDir := t.TempDir()
	start := time.Now()
	deb := buildPackage(t, pkgDir)
	built := time.Since(start)
	t.Logf("package built in %s", built.Round(time.Millisecond))
	m := menu.Menu{Racks: 3, Spines: 1, BootServers: true, Agent: true, Suite: "bookworm"}
	d := newDC(t, m, func(p *menu.Plan, _ string) {
		for _, n := range p.Cluster.NspawnNodes {
			n.Binds = append(n.Binds, spec.Bind{Source: pkgDir, Target: "/opt/vdc-deb", ReadOnly: true})
		}
	})
	inside := "/opt/vdc-deb/" + filepath.Base(deb)
	var wg sync.WaitGroup
	var mu sync.Mutex
	took := map[string]time.Duration{}
	for _, n := range d.plan.Cluster.NspawnNodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			if out, err := d.in.Run(ctx, n.Name, "dpkg", "-i", inside); err != nil {
				t.Errorf("%s: dpkg -i: %v\n%s", n.Name, err, out)
			}
			mu.Lock()
			took[n.Name] = time.Since(start)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("installed with dpkg in %v", took)

	for _, n := range d.plan.Cluster.NspawnNodes {
		if got := d.run(n.Name, "dpkg-query", "-W", "-f", "${Status} ${Version}", "neco"); got != "install ok installed 0.0.0~dctest" {
			t.Errorf("%s: neco package %q", n.Name, got)
		}
		if out := d.run(n.Name, "neco", "--help"); !strings.Contains(out, "neco") {
			t.Errorf("%s: neco --help:\n%s", n.Name, out)
		}
		for _, u := range []string{"neco-updater", "neco-worker"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			enabled, _ := d.in.Run(ctx, n.Name, "systemctl", "is-enabled", u)
			active, _ := d.in.Run(ctx, n.Name, "systemctl", "is-active", u)
			cond, _ := d.in.Run(ctx, n.Name, "systemctl", "show", "-p", "ConditionResult", "--value", u)
			cancel()
			if strings.TrimSpace(enabled) != "enabled" || strings.TrimSpace(active) != "inactive" {
				t.Errorf("%s: %s is %q/%q, want enabled and inactive (no /etc/neco/config.yml yet)", n.Name, u,
					strings.TrimSpace(enabled), strings.TrimSpace(active))
			}
			if c := strings.TrimSpace(cond); c != "no" {
				t.Errorf("%s: %s ConditionResult = %q, want no (waiting for neco setup)", n.Name, u, c)
			}
		}
	}

	// Removal under systemd.
	n := d.plan.Cluster.NspawnNodes[0].Name
	d.run(n, "dpkg", "--purge", "neco")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := d.in.Run(ctx, n, "sh", "-c", "ls /usr/bin/neco /lib/systemd/system/neco-worker.service 2>/dev/null; systemctl is-enabled neco-worker"); err == nil {
		t.Errorf("%s: neco still there after purge:\n%s", n, out)
	}
	report(t, map[string]any{"package_build_s": built.Seconds(), "dpkg_install_s": median(took).Seconds()})
}
