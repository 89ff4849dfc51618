package repair

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// inventory is sabakan in memory.
type inventory struct {
	mu       sync.Mutex
	machines map[string]sabakan.Machine
	err      error
}

func (i *inventory) Machines(context.Context) ([]sabakan.Machine, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.err != nil {
		return nil, i.err
	}
	var out []sabakan.Machine
	for _, m := range i.machines {
		out = append(out, m)
	}
	return out, nil
}

func (i *inventory) set(ms ...sabakan.Machine) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, m := range ms {
		i.machines[m.Spec.Serial] = m
	}
}

// power records power cycles; before, when set, runs first and its error
// is the cycle's.
type power struct {
	mu     sync.Mutex
	cycles []string
	err    error
	before func(ctx context.Context, bmc string) error
}

func (p *power) PowerCycle(ctx context.Context, bmc string) error {
	if p.before != nil {
		if err := p.before(ctx, bmc); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.cycles = append(p.cycles, bmc)
	return nil
}

func (p *power) calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cycles)
}

// audit is the audit log in memory: "serial action detail" lines.
type audit struct {
	mu      sync.Mutex
	entries []string
	err     error
}

func (a *audit) Record(_ context.Context, serial, action, detail string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.entries = append(a.entries, serial+" "+action+" "+detail)
	return nil
}

func (a *audit) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.entries {
		f := strings.Fields(e)
		out = append(out, f[0]+" "+f[1])
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	r      *Repairer
	inv    *inventory
	power  *power
	audit  *audit
	clock  *clock
	st     *storage.Storage
	leader *etcdutil.Leader
	reg    *prometheus.Registry
}

// newEnv returns a Repairer on the test's namespace of the embedded etcd,
// leading the state setter's election.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	client := etcdtest.Client(t)
	leader, err := etcdutil.Campaign(context.Background(), client, storage.LeaderStateSetter, "boot-0", 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Resign(context.Background()) })
	e := &env{
		inv:    &inventory{machines: map[string]sabakan.Machine{}},
		power:  &power{},
		audit:  &audit{},
		clock:  &clock{t: now},
		st:     storage.New(client),
		leader: leader,
		reg:    prometheus.NewRegistry(),
	}
	e.r = &Repairer{
		Inventory: e.inv, Power: e.power, Audit: e.audit,
		Store:  EtcdStore{Storage: e.st, LeaderKey: leader.Key()},
		Config: cfg, Now: e.clock.Now,
	}
	e.r.Register(e.reg)
	return e
}

func (e *env) record(t *testing.T, serial string) Record {
	t.Helper()
	recs, err := e.st.RepairRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return recs[serial]
}

// metric is the value of the series of name with label=value (none when
// label is ""), 0 when absent.
func (e *env) metric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func (e *env) round(t *testing.T) Decision {
	t.Helper()
	d, err := e.r.Round(context.Background())
	if err != nil {
		t.Fatalf("Round: %v", err)
	}
	return d
}

func TestRoundCyclesOnce(t *testing.T) {
	e := newEnv(t, Config{})
	hung := mach("a", 1, unhealthy, 11*time.Minute)
	e.inv.set(hung, mach("b", 2, healthy, time.Hour), mach("c", 3, unreachable, 5*time.Minute))
	// The record must be in etcd when the power action starts.
	e.power.before = func(ctx context.Context, bmc string) error {
		r := e.record(t, "a")
		if r.Result != ResultCycled || !r.Episode.Equal(hung.Status.Timestamp) || r.State != unhealthy {
			t.Errorf("record when %s is cycled: %+v", bmc, r)
		}
		return nil
	}

	d := e.round(t)
	if len(d.Cycle) != 1 || d.Cycle[0].Serial != "a" {
		t.Fatalf("first round: %s", summary(d))
	}
	if got := e.power.calls(); !slices.Equal(got, []string{"10.72.17.a"}) {
		t.Errorf("power cycles = %v", got)
	}
	if got := e.audit.actions(); !slices.Equal(got, []string{"a power-cycle"}) {
		t.Errorf("audit = %v", got)
	}
	if got := e.audit.entries[0]; !strings.Contains(got, "unhealthy since 2026-11-23T11:49:00Z") {
		t.Errorf("audit detail = %q, want the state and since when", got)
	}
	if r := e.record(t, "a"); r.Result != ResultCycled || !r.CycledAt.Equal(now) {
		t.Errorf("record = %+v", r)
	}

	// Later rounds of the same failure, c past After too by then: a is
	// not cycled again, c waits for the rate limit.
	for range 3 {
		e.clock.advance(2 * time.Minute)
		d = e.round(t)
		if len(d.Cycle) != 0 {
			t.Fatalf("later round cycled again: %s", summary(d))
		}
	}
	if got := e.power.calls(); len(got) != 1 {
		t.Errorf("power cycles = %v, want one", got)
	}
	if got := summary(d); got != "cycle  | held c:rate-limit | settle " {
		t.Errorf("later round: %s", got)
	}
	if got := e.metric(t, "neco_repair_cycles_total", "result", ResultCycled); got != 1 {
		t.Errorf("cycles_total{result=cycled} = %v", got)
	}
	if got := e.metric(t, "neco_repair_held", "reason", HoldRateLimit); got != 1 {
		t.Errorf("held{reason=rate-limit} = %v", got)
	}
	if got := e.metric(t, "neco_repair_rounds_total", "result", "ok"); got != 4 {
		t.Errorf("rounds_total{result=ok} = %v", got)
	}
	if got := e.metric(t, "neco_repair_last_round_timestamp_seconds", "", ""); got == 0 {
		t.Error("last_round_timestamp_seconds not set")
	}
}

func TestRoundPowerFails(t *testing.T) {
	e := newEnv(t, Config{})
	e.inv.set(mach("a", 1, unreachable, 11*time.Minute))
	e.power.err = errors.New("redfish: 503 Service Unavailable")

	if _, err := e.r.Round(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Round: err = %v, want the power error", err)
	}
	if r := e.record(t, "a"); r.Result != "failed: redfish: 503 Service Unavailable" {
		t.Errorf("record = %+v", r)
	}
	if got := e.audit.actions(); !slices.Equal(got, []string{"a power-cycle", "a power-cycle-failed"}) {
		t.Errorf("audit = %v", got)
	}
	if got := e.metric(t, "neco_repair_cycles_total", "result", "failed"); got != 1 {
		t.Errorf("cycles_total{result=failed} = %v", got)
	}

	// Not tried again: left for an operator.
	e.power.err = nil
	e.clock.advance(time.Hour)
	d := e.round(t)
	if got := summary(d); got != "cycle  | held a:operator | settle " {
		t.Errorf("next round: %s", got)
	}
	if got := e.power.calls(); len(got) != 0 {
		t.Errorf("power cycles = %v", got)
	}
}

func TestRoundAuditFails(t *testing.T) {
	e := newEnv(t, Config{})
	e.inv.set(mach("a", 1, unreachable, 11*time.Minute))
	e.audit.err = errors.New("sabakan: 500")

	if _, err := e.r.Round(context.Background()); err == nil {
		t.Error("Round: no error")
	}
	// No power action goes unaudited.
	if got := e.power.calls(); len(got) != 0 {
		t.Errorf("power cycles = %v", got)
	}
	if r := e.record(t, "a"); r.Result != "failed: audit: sabakan: 500" {
		t.Errorf("record = %+v", r)
	}
}

func TestRoundSettles(t *testing.T) {
	e := newEnv(t, Config{Limit: 2})
	a, b := mach("a", 1, unreachable, 11*time.Minute), mach("b", 2, unhealthy, 12*time.Minute)
	e.inv.set(a, b)
	if d := e.round(t); len(d.Cycle) != 2 {
		t.Fatalf("first round: %s", summary(d))
	}

	// a comes back; b goes down under the cycle and stays down.
	e.clock.advance(5 * time.Minute)
	a.Status = sabakan.MachineStatus{State: healthy, Timestamp: e.clock.Now().Add(-time.Minute)}
	b.Status = sabakan.MachineStatus{State: unreachable, Timestamp: now.Add(30 * time.Second)}
	e.inv.set(a, b)
	if got := summary(e.round(t)); got != "cycle  | held  | settle a:recovered+healthy" {
		t.Errorf("round after 5 min: %s", got)
	}
	if r := e.record(t, "a"); r.Result != ResultRecovered || !r.HealthyAt.Equal(e.clock.Now()) {
		t.Errorf("record of a = %+v", r)
	}

	e.clock.advance(10 * time.Minute)
	if got := summary(e.round(t)); got != "cycle  | held b:operator | settle b:gave-up" {
		t.Errorf("round after 15 min: %s", got)
	}
	if r := e.record(t, "b"); r.Result != ResultGaveUp {
		t.Errorf("record of b = %+v", r)
	}
	// Reported once.
	e.clock.advance(time.Minute)
	if got := summary(e.round(t)); got != "cycle  | held b:operator | settle " {
		t.Errorf("round after 16 min: %s", got)
	}
	if got := e.audit.actions(); !slices.Equal(got, []string{"b power-cycle", "a power-cycle", "a repair-recovered", "b repair-gave-up"}) {
		t.Errorf("audit = %v", got)
	}
	if got := e.power.calls(); len(got) != 2 {
		t.Errorf("power cycles = %v", got)
	}
	for res, want := range map[string]float64{ResultCycled: 2, ResultRecovered: 1, ResultGaveUp: 1, "failed": 0} {
		if got := e.metric(t, "neco_repair_cycles_total", "result", res); got != want {
			t.Errorf("cycles_total{result=%s} = %v, want %v", res, got, want)
		}
	}
	if got := e.metric(t, "neco_repair_held", "reason", HoldOperator); got != 1 {
		t.Errorf("held{reason=operator} = %v", got)
	}

	// An operator fixes b; a later failure of b is a new episode.
	e.clock.advance(time.Hour)
	b.Status = sabakan.MachineStatus{State: healthy, Timestamp: e.clock.Now().Add(-time.Minute)}
	e.inv.set(b)
	if got := summary(e.round(t)); got != "cycle  | held  | settle b:gave-up+healthy" {
		t.Errorf("round after the fix: %s", got)
	}
	e.clock.advance(time.Hour)
	b.Status = sabakan.MachineStatus{State: unhealthy, Timestamp: e.clock.Now().Add(-11 * time.Minute)}
	e.inv.set(b)
	if got := summary(e.round(t)); got != "cycle b | held  | settle " {
		t.Errorf("round after a new failure: %s", got)
	}
}

func TestRoundFenced(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Config{Limit: 5})
	e.inv.set(mach("a", 1, unreachable, 11*time.Minute))
	e.round(t)

	// Leadership lost (its key gone): no write, no power action.
	if _, err := e.st.Client.Delete(ctx, e.leader.Key()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutRepairRecord(ctx, e.leader.Key(), Record{Serial: "x", Result: ResultCycled}); !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("PutRepairRecord without the leader key: err = %v, want ErrNotLeader", err)
	}
	e.inv.set(mach("b", 2, unreachable, 11*time.Minute), mach("c", 3, unreachable, 12*time.Minute))
	_, err := e.r.Round(ctx)
	if !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("Round after the leader key was deleted: err = %v, want ErrNotLeader", err)
	}
	if got := e.power.calls(); !slices.Equal(got, []string{"10.72.17.a"}) {
		t.Errorf("power cycles = %v, want only a's from before", got)
	}
	if got := e.audit.actions(); !slices.Equal(got, []string{"a power-cycle"}) {
		t.Errorf("audit = %v", got)
	}
	recs, _ := e.st.RepairRecords(ctx)
	if len(recs) != 1 {
		t.Errorf("records = %+v, want a's only", recs)
	}
	if got := e.metric(t, "neco_repair_rounds_total", "result", "error"); got != 1 {
		t.Errorf("rounds_total{result=error} = %v", got)
	}
}

func TestRoundInventoryError(t *testing.T) {
	e := newEnv(t, Config{})
	e.inv.set(mach("a", 1, unreachable, 11*time.Minute))
	e.inv.err = errors.New("sabakan unreachable")
	if _, err := e.r.Round(context.Background()); err == nil {
		t.Error("Round: no error")
	}
	if len(e.power.calls()) != 0 || len(e.audit.actions()) != 0 || e.record(t, "a").Result != "" {
		t.Error("a round without the inventory acted")
	}
	if got := e.metric(t, "neco_repair_last_round_timestamp_seconds", "", ""); got != 0 {
		t.Errorf("last_round_timestamp_seconds = %v after a failed round", got)
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t, Config{})
	e.r.Interval = 10 * time.Millisecond
	e.inv.set(mach("a", 1, unreachable, 11*time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric(t, "neco_repair_rounds_total", "result", "ok") < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil on cancellation", err)
	}
	if got := e.power.calls(); len(got) != 1 {
		t.Errorf("power cycles over many rounds = %v, want one", got)
	}
}
