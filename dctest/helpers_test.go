//go:build dctest

package dctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// dc is one virtual data center under test.
type dc struct {
	t     testing.TB
	names vdc.Names
	plan  *menu.Plan
	in    *vdc.Instance
	// Figures measured while creating it.
	created  *vdc.Timings
	booted   map[string]time.Duration
	bgpReady time.Duration
	peakPSS  uint64
	// destroyed is set once destroy ran, so cleanup does not run it again.
	destroyed bool
}

func requireHost(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "bird", "birdc", "dnsmasq", "systemd-nspawn", "debootstrap", "nsenter",
		"qemu-system-x86_64", "qemu-img")
}

// newDC builds menu m as a fresh instance, waits for it to boot and
// converge, and registers its destruction (with a leftover check). Tweaks
// may change the generated plan before it is built.
func newDC(t testing.TB, m menu.Menu, tweaks ...func(p *menu.Plan, filesDir string)) *dc {
	t.Helper()
	requireHost(t)
	// One data center at a time on two cores.
	releaseNecoDC(t)
	b := make([]byte, 2)
	rand.Read(b)
	d := &dc{t: t, names: vdc.Names{Instance: "d" + hex.EncodeToString(b), StateRoot: t.TempDir()}}
	t.Cleanup(func() {
		if !d.destroyed {
			d.destroy()
		}
	})
	files := filepath.Join(d.names.StateDir(), "files")
	o := menu.Options{FilesDir: files}
	if m.Agent {
		o.AgentBinary = agentBinary
	}
	p, err := menu.Generate(m, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tw := range tweaks {
		tw(p, files)
	}
	if err := p.Write(files); err != nil {
		t.Fatal(err)
	}
	d.plan = p

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stop := samplePSS(d.names, 500*time.Millisecond, &d.peakPSS)
	defer stop()
	start := time.Now()
	d.created, err = vdc.Create(ctx, p.Cluster, vdc.Options{Names: d.names, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	d.in, err = vdc.Open(d.names)
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer bcancel()
	if d.booted, err = d.in.WaitBooted(bctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.in.WaitBGP(bctx); err != nil {
		t.Fatal(err)
	}
	if m.Agent {
		// Node sessions appear as the agents start: two per machine.
		want := 2 * len(p.Cluster.NspawnNodes)
		err := proc.WaitFor(bctx, 250*time.Millisecond, func() bool {
			s, err := d.in.WaitBGP(bctx)
			return err == nil && nodeSessions(s) == want
		})
		if err != nil {
			s, _ := d.in.BGPSessions(ctx)
			t.Fatalf("node BGP sessions: %d of %d established", nodeSessions(s), want)
		}
	}
	d.bgpReady = time.Since(start)
	t.Logf("instance %s: created in %s, machines booted in %s (median) / %s (max), BGP converged %s after start",
		d.names.Instance, d.created.Total.Round(time.Millisecond), median(d.booted).Round(time.Millisecond),
		maxOf(d.booted).Round(time.Millisecond), d.bgpReady.Round(time.Millisecond))
	return d
}

func (d *dc) destroy() {
	t := d.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := vdc.Destroy(ctx, d.names); err != nil {
		t.Errorf("destroy: %v", err)
	}
	left, err := vdc.Leftovers(d.names)
	if err != nil {
		t.Error(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	t.Logf("destroyed in %s", time.Since(start).Round(time.Millisecond))
}

// run runs argv in a host and fails the test on error.
func (d *dc) run(host string, argv ...string) string {
	d.t.Helper()
	return hosts{d.t, d.in, 30 * time.Second}.must(host, argv...)
}

// hosts runs commands in a data center's hosts, each bounded by timeout.
type hosts struct {
	t       testing.TB
	in      *vdc.Instance
	timeout time.Duration
}

// run runs argv in host and returns its output.
func (h hosts) run(host string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	return h.in.Run(ctx, host, argv...)
}

// must runs argv in host and fails the test on error.
func (h hosts) must(host string, argv ...string) string {
	h.t.Helper()
	out, err := h.run(host, argv...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// samplePSS records in *peak the peak summed PSS of the instance's
// processes, sampled every interval, until the returned stop is called.
func samplePSS(names vdc.Names, every time.Duration, peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hier, err := proc.Detect()
		if err != nil {
			return
		}
		g := proc.Group{H: hier, Path: names.CgroupRoot()}
		for {
			if v := groupPSS(g); v > *peak {
				*peak = v
			}
			select {
			case <-done:
				return
			case <-time.After(every):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// checkNoHostRoute fails unless the host itself has no route into the
// data center: its networks are reachable only inside its namespaces.
func checkNoHostRoute(t *testing.T) {
	t.Helper()
	host, _ := exec.Command("ip", "route").Output()
	for _, pfx := range []string{"10.69.", "10.72."} {
		if strings.Contains(string(host), pfx) {
			t.Errorf("the host has a route into the data center (%s):\n%s", pfx, host)
		}
	}
}

// groupPSS sums the proportional set size of every process in g (bytes).
func groupPSS(g proc.Group) uint64 {
	pids, _ := g.PIDs()
	var sum uint64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/smaps_rollup")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				sum += kb << 10
			}
		}
	}
	return sum
}

// nodeSessions counts the established sessions ToRs have with machines
// (BIRD names dynamic sessions node1, node2, …).
func nodeSessions(sessions []vdc.BGPSession) int {
	n := 0
	for _, s := range sessions {
		if strings.HasPrefix(s.Name, "node") && s.Established() {
			n++
		}
	}
	return n
}

func median(m map[string]time.Duration) time.Duration {
	if len(m) == 0 {
		return 0
	}
	v := make([]time.Duration, 0, len(m))
	for _, d := range m {
		v = append(v, d)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func maxOf(m map[string]time.Duration) time.Duration {
	var x time.Duration
	for _, d := range m {
		x = max(x, d)
	}
	return x
}

// report appends one JSON line of figures to $DCTEST_REPORT, if set.
func report(t *testing.T, v map[string]any) {
	t.Helper()
	path := os.Getenv("DCTEST_REPORT")
	if path == "" {
		return
	}
	v["test"] = t.Name()
	v["time"] = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(v)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

type logWriter struct{ t testing.TB }

func (l logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if !strings.HasPrefix(line, "I: ") {
			l.t.Log(line)
		}
	}
	return len(p), nil
}
