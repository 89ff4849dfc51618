//go:build dctest

package dctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/necodc"
)

// The suites that need neco running (bootstrap, network faults,
// functions, upgrade) share one bootstrapped data center: the first of them
// that runs creates and bootstraps it (so each can also run alone), and it
// lives until the end of the test binary, or until a suite that builds a
// data center of its own releases it. Go runs the suites in file order:
// bootstrap, faults, functions, upgrade, then vdc_topology.

// Versions of the releases the suites build: the first is installed by
// bootstrap, the second published for the upgrade.
const (
	necoV1 = "2024.01.01-1"
	necoV2 = "2024.01.01-2"
)

var shared struct {
	mu    sync.Mutex
	dc    *necodc.DC
	err   error // creation or bootstrap failed: later suites fail at once
	build map[string]*necodc.Build
	log   logSwitch
	// Figures of the bootstrap.
	created, bootstrapped, ready time.Duration
	peakPSS                      uint64
	stopPSS                      func()
}

// logSwitch sends the shared data center's log to the test that uses it.
type logSwitch struct {
	mu sync.Mutex
	t  testing.TB
}

func (l *logSwitch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		logWriter{l.t}.Write(p)
	}
	return len(p), nil
}

func (l *logSwitch) set(t testing.TB) {
	l.mu.Lock()
	l.t = t
	l.mu.Unlock()
	t.Cleanup(func() {
		l.mu.Lock()
		if l.t == t {
			l.t = nil
		}
		l.mu.Unlock()
	})
}

// necoBuild builds release version once per test binary.
func necoBuild(t testing.TB, version string) *necodc.Build {
	t.Helper()
	if b := shared.build[version]; b != nil {
		return b
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var opts []necodc.BuildOption
	if version == necoV2 {
		// The second release changes a component's flags: the engine
		// rolls the control planes when it arrives (TestUpgrade).
		tmpl, err := os.ReadFile(filepath.Join(repo, "etc", "cke-template.yml"))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(binDir, "cke-template-"+version+".yml")
		if err := os.WriteFile(file, append(tmpl, []byte(v2TemplateOptions)...), 0o644); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, necodc.WithCKETemplate(file))
	}
	b, err := necodc.BuildPackage(ctx, repo, binDir, version, logWriter{t}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if shared.build == nil {
		shared.build = map[string]*necodc.Build{}
	}
	shared.build[version] = b
	return b
}

// v2TemplateOptions are added to the second release's cluster.yml template.
const v2TemplateOptions = `options:
  kube-api:
    extra_args: ["--v=1"]
`

// necoDC returns the shared bootstrapped data center, making it first if
// needed.
func necoDC(t *testing.T) *necodc.DC {
	t.Helper()
	requireHost(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.log.set(t)
	if shared.err != nil {
		t.Fatalf("the shared data center could not be made: %v", shared.err)
	}
	if shared.dc != nil {
		return shared.dc
	}
	shared.err = makeNecoDC(t)
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.dc
}

func makeNecoDC(t *testing.T) error {
	b := necoBuild(t, necoV1)
	repo, _ := filepath.Abs("..")
	rnd := make([]byte, 2)
	rand.Read(rnd)
	stateRoot, err := os.MkdirTemp("", "dctest-neco-")
	if err != nil {
		return err
	}
	names := vdc.Names{Instance: "n" + hex.EncodeToString(rnd), StateRoot: stateRoot}
	ctx := context.Background()
	start := time.Now()
	stop := samplePSS(names, 2*time.Second, &shared.peakPSS)
	shared.stopPSS = stop
	d, err := necodc.Create(ctx, necodc.Options{Names: names, Menu: menu.Default(), Build: b, Repo: repo, Log: &shared.log})
	if d != nil {
		shared.dc = d
	} else {
		shared.dc = &necodc.DC{Names: names}
	}
	if err != nil {
		return err
	}
	shared.created = time.Since(start)
	if err := d.Bootstrap(ctx, b); err != nil {
		dumpBootLogs(t, d)
		return err
	}
	shared.bootstrapped = time.Since(start)
	// The QEMU machine takes the longest: 2–2.5 min from its reset to
	// healthy at load ~30 (docs/benchmarks.md).
	if err := d.WaitReady(ctx, 8*time.Minute); err != nil {
		dumpBootLogs(t, d)
		return err
	}
	shared.ready = time.Since(start)
	t.Logf("neco data center %s: created in %s, bootstrapped after %s, every machine healthy after %s",
		names.Instance, shared.created.Round(time.Second), shared.bootstrapped.Round(time.Second), shared.ready.Round(time.Second))
	return nil
}

// releaseNecoDC destroys the shared data center, if any, and checks that
// nothing is left.
func releaseNecoDC(t testing.TB) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.dc == nil {
		return
	}
	if shared.stopPSS != nil {
		shared.stopPSS()
	}
	names := shared.dc.Names
	shared.dc, shared.err = nil, fmt.Errorf("released")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	err := necodc.Destroy(ctx, names)
	os.RemoveAll(names.StateRoot)
	msg := fmt.Sprintf("shared data center %s destroyed in %s; its peak memory (PSS of all its processes) was %d MiB",
		names.Instance, time.Since(start).Round(time.Millisecond), shared.peakPSS>>20)
	if t != nil {
		if err != nil {
			t.Error(err)
		}
		t.Log(msg)
	} else {
		fmt.Println("dctest:", msg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dctest:", err)
			sharedLeft = true
		}
	}
}

// sharedLeft records a failed teardown at the end of the run.
var sharedLeft bool

// dumpBootLogs logs what the boot servers' daemons said last.
func dumpBootLogs(t testing.TB, d *necodc.DC) {
	if d.In == nil {
		return
	}
	for _, b := range d.BootServers() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := d.In.Run(ctx, b, "sh", "-c", "neco status; journalctl --no-pager -n 40 -u neco-worker -u neco-updater -u sabakan -u etcd -u vault")
		cancel()
		t.Logf("%s:\n%s", b, out)
	}
	for _, n := range d.Plan.Cluster.Nodes {
		b, _ := os.ReadFile(filepath.Join(d.Names.HostDir(n.Name), "console.log"))
		t.Logf("%s console:\n%s", n.Name, tail(string(b), 3000))
	}
}
