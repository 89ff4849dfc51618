package repair

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	healthy       = sabakan.StateHealthy
	unhealthy     = sabakan.StateUnhealthy
	unreachable   = sabakan.StateUnreachable
	updating      = sabakan.StateUpdating
	retiring      = sabakan.StateRetiring
	retired       = sabakan.StateRetired
	uninitialized = sabakan.StateUninitialized
)

// mach is a machine of rack in state for the last d.
func mach(serial string, rack uint, state sabakan.MachineState, d time.Duration) sabakan.Machine {
	return sabakan.Machine{
		Spec: sabakan.MachineSpec{
			Serial: serial, Rack: rack, Role: "cs",
			BMC: sabakan.MachineBMC{Type: "IPMI-2.0", IPv4: "10.72.17." + serial},
		},
		Status: sabakan.MachineStatus{State: state, Timestamp: now.Add(-d)},
	}
}

func boot(m sabakan.Machine) sabakan.Machine { m.Spec.Role = sabakan.RoleBoot; return m }

func noBMC(m sabakan.Machine) sabakan.Machine { m.Spec.BMC.IPv4 = ""; return m }

// rec is a record of serial for the failure that started d ago, cycled c ago.
func rec(serial string, d, c time.Duration, result string) Record {
	return Record{Serial: serial, Episode: now.Add(-d), State: unhealthy, CycledAt: now.Add(-c), Result: result}
}

func healthyAt(r Record, ago time.Duration) Record { r.HealthyAt = now.Add(-ago); return r }

func records(rs ...Record) map[string]Record {
	out := map[string]Record{}
	for _, r := range rs {
		out[r.Serial] = r
	}
	return out
}

// summary renders a decision compactly: "cycle a b | held c:rack-wide |
// settle d:recovered+healthy".
func summary(d Decision) string {
	var cycle, held, settle []string
	for _, a := range d.Cycle {
		cycle = append(cycle, a.Serial)
	}
	for _, h := range d.Held {
		held = append(held, h.Serial+":"+h.Kind)
	}
	for _, r := range d.Settle {
		s := r.Serial + ":" + r.Result
		if !r.HealthyAt.IsZero() {
			s += "+healthy"
		}
		settle = append(settle, s)
	}
	return fmt.Sprintf("cycle %s | held %s | settle %s",
		strings.Join(cycle, " "), strings.Join(held, " "), strings.Join(settle, " "))
}

func TestDecide(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name     string
		machines []sabakan.Machine
		records  map[string]Record
		config   Config
		want     string
		reasons  map[string]string // serial → a part of its hold reason
	}{
		// Candidates.
		{name: "unhealthy past After is cycled",
			machines: []sabakan.Machine{mach("a", 0, unhealthy, 11*m)},
			want:     "cycle a | held  | settle "},
		{name: "unreachable past After is cycled",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 11*m)},
			want:     "cycle a | held  | settle "},
		{name: "exactly After is cycled",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 10*m)},
			want:     "cycle a | held  | settle "},
		{name: "within After is not",
			machines: []sabakan.Machine{mach("a", 0, unhealthy, 9*m)},
			want:     "cycle  | held  | settle "},
		{name: "After from the config",
			machines: []sabakan.Machine{mach("a", 0, unhealthy, 3*m), mach("b", 1, unhealthy, m)},
			config:   Config{After: 2 * m, Limit: 5},
			want:     "cycle a | held  | settle "},
		{name: "other states never",
			machines: []sabakan.Machine{
				mach("a", 0, healthy, 100*m), mach("b", 1, updating, 100*m), mach("c", 2, retiring, 100*m),
				mach("d", 3, retired, 100*m), mach("e", 4, uninitialized, 100*m),
			},
			want: "cycle  | held  | settle "},
		{name: "boot servers never",
			machines: []sabakan.Machine{boot(mach("a", 0, unreachable, 100*m))},
			want:     "cycle  | held  | settle "},

		// Once per episode.
		{name: "cycled in this episode: not again",
			machines: []sabakan.Machine{mach("a", 0, unhealthy, 12*m)},
			records:  records(rec("a", 12*m, m, ResultCycled)),
			want:     "cycle  | held  | settle "},
		{name: "the cycle failed in this episode: not again, held",
			machines: []sabakan.Machine{mach("a", 0, unhealthy, 40*m)},
			records:  records(rec("a", 40*m, 30*m, ResultFailed+"redfish: 503")),
			want:     "cycle  | held a:operator | settle ",
			reasons:  map[string]string{"a": "failed: redfish: 503; left for an operator"}},
		{name: "a new failure after a recovery is a new episode",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 11*m)},
			records:  records(healthyAt(rec("a", 5*60*m, 5*60*m-10*m, ResultRecovered), 4*60*m)),
			want:     "cycle a | held  | settle "},
		{name: "a new failure after a failed cycle and a recovery is a new episode",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 11*m)},
			records:  records(healthyAt(rec("a", 5*60*m, 5*60*m-10*m, ResultFailed+"x"), 4*60*m)),
			want:     "cycle a | held  | settle "},
		{name: "the cycle's own effect (unhealthy, cycled, now unreachable) is not a new episode",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 11*m)},
			records:  records(rec("a", 22*m, 12*m, ResultCycled)),
			want:     "cycle  | held  | settle "},
		{name: "gave up, failing with a newer timestamp: held, not cycled again",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 50*m)},
			records:  records(rec("a", 90*m, 60*m, ResultGaveUp)),
			want:     "cycle  | held a:operator | settle ",
			reasons:  map[string]string{"a": "gave up: not healthy 15m0s after the power cycle"}},

		// BMC.
		{name: "no BMC address: held",
			machines: []sabakan.Machine{noBMC(mach("a", 0, unhealthy, 11*m))},
			want:     "cycle  | held a:no-bmc | settle ",
			reasons:  map[string]string{"a": "no BMC address"}},
		{name: "BMC address from the machine's info",
			machines: []sabakan.Machine{func() sabakan.Machine {
				x := noBMC(mach("a", 0, unhealthy, 11*m))
				x.Info.BMC.IPv4.Address = "10.72.17.9"
				return x
			}()},
			want: "cycle a | held  | settle "},

		// Rack-wide failure.
		{name: "half of a rack failing: rack-wide, all held",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 11*m), mach("b", 1, unreachable, 11*m),
				mach("c", 1, healthy, 100*m), mach("d", 1, healthy, 100*m),
			},
			config:  Config{Limit: 5},
			want:    "cycle  | held a:rack-wide b:rack-wide | settle ",
			reasons: map[string]string{"a": "rack-wide failure: power or network, left for an operator (2 of 4 machines of rack 1"}},
		{name: "rack-wide counts machines failing for less than After",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 11*m), mach("b", 1, unhealthy, m), mach("c", 1, healthy, 100*m),
			},
			want: "cycle  | held a:rack-wide | settle "},
		{name: "rack-wide counts a failing boot server",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 11*m), boot(mach("b", 1, unreachable, 11*m)), mach("c", 1, healthy, 100*m),
			},
			want: "cycle  | held a:rack-wide | settle "},
		{name: "retired machines are not part of the rack",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 11*m), mach("b", 1, unreachable, 11*m), mach("c", 1, healthy, 100*m),
				mach("d", 1, healthy, 100*m), mach("e", 1, retired, 100*m), mach("f", 1, retired, 100*m),
			},
			config: Config{Limit: 5},
			want:   "cycle  | held a:rack-wide b:rack-wide | settle "},
		{name: "less than half of a rack: cycled",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 12*m), mach("b", 1, unreachable, 11*m),
				mach("c", 1, healthy, 100*m), mach("d", 1, healthy, 100*m), mach("e", 1, retiring, 100*m),
			},
			config: Config{Limit: 5},
			want:   "cycle a b | held  | settle "},
		{name: "one failing machine of two is not rack-wide",
			machines: []sabakan.Machine{mach("a", 1, unreachable, 11*m), mach("b", 1, healthy, 100*m)},
			want:     "cycle a | held  | settle "},
		{name: "failures in different racks are not rack-wide",
			machines: []sabakan.Machine{
				mach("a", 1, unreachable, 11*m), mach("b", 1, healthy, 100*m), mach("c", 1, healthy, 100*m),
				mach("d", 2, unreachable, 11*m), mach("e", 2, healthy, 100*m), mach("f", 2, healthy, 100*m),
			},
			config: Config{Limit: 5},
			want:   "cycle a d | held  | settle "},

		// Rate limit.
		{name: "rate limit: the oldest failure first, the rest held",
			machines: []sabakan.Machine{
				mach("a", 1, unhealthy, 11*m), mach("b", 2, unreachable, 30*m), mach("c", 3, unhealthy, 20*m),
			},
			want:    "cycle b | held a:rate-limit c:rate-limit | settle ",
			reasons: map[string]string{"a": "rate limit: 0 cycles in the last 10m0s"}},
		{name: "rate limit: a cycle within Window counts",
			machines: []sabakan.Machine{mach("a", 1, unhealthy, 11*m)},
			records:  records(healthyAt(rec("z", 20*m, 5*m, ResultRecovered), m)),
			want:     "cycle  | held a:rate-limit | settle ",
			reasons:  map[string]string{"a": "rate limit: 1 cycles in the last 10m0s"}},
		{name: "rate limit: a cycle before Window does not count",
			machines: []sabakan.Machine{mach("a", 1, unhealthy, 11*m)},
			records:  records(healthyAt(rec("z", 30*m, 11*m, ResultRecovered), m)),
			want:     "cycle a | held  | settle "},
		{name: "rate limit: failed cycles count",
			machines: []sabakan.Machine{mach("a", 1, unhealthy, 11*m), mach("z", 2, unhealthy, 40*m)},
			records:  records(rec("z", 40*m, 5*m, ResultFailed+"timeout")),
			want:     "cycle  | held a:rate-limit z:operator | settle "},
		{name: "rate limit: Limit 3 in Window 1h, one used",
			machines: []sabakan.Machine{
				mach("a", 1, unhealthy, 11*m), mach("b", 2, unreachable, 30*m), mach("c", 3, unhealthy, 20*m),
				mach("d", 4, unhealthy, 25*m),
			},
			records: records(healthyAt(rec("z", 90*m, 50*m, ResultRecovered), 40*m)),
			config:  Config{Limit: 3, Window: time.Hour},
			want:    "cycle b d | held a:rate-limit c:rate-limit | settle ",
			reasons: map[string]string{"a": "rate limit: 1 cycles in the last 1h0m0s"}},
		{name: "rate limit: ties broken by serial",
			machines: []sabakan.Machine{mach("c", 3, unhealthy, 11*m), mach("b", 2, unhealthy, 11*m)},
			want:     "cycle b | held c:rate-limit | settle "},

		// Rack-wide and rate limit together: held racks use none of the limit.
		{name: "rack-wide and rate limit",
			machines: []sabakan.Machine{
				mach("r1", 1, unreachable, 60*m), mach("r2", 1, unreachable, 50*m), mach("r3", 1, healthy, 100*m),
				mach("x", 2, unhealthy, 20*m), mach("x2", 2, healthy, 100*m), mach("x3", 2, healthy, 100*m),
				mach("y", 3, unreachable, 30*m), mach("y2", 3, healthy, 100*m), mach("y3", 3, healthy, 100*m),
				noBMC(mach("z", 4, unhealthy, 40*m)),
			},
			want: "cycle y | held r1:rack-wide r2:rack-wide x:rate-limit z:no-bmc | settle "},

		// Settle.
		{name: "cycled and healthy now: recovered",
			machines: []sabakan.Machine{mach("a", 0, healthy, 2*m)},
			records:  records(rec("a", 20*m, 8*m, ResultCycled)),
			want:     "cycle  | held  | settle a:recovered+healthy"},
		{name: "cycled, not healthy within Wait: gave up, held",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 14*m)},
			records:  records(rec("a", 30*m, 15*m, ResultCycled)),
			want:     "cycle  | held a:operator | settle a:gave-up"},
		{name: "cycled, within Wait: nothing yet",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 14*m)},
			records:  records(rec("a", 30*m, 14*m, ResultCycled)),
			want:     "cycle  | held  | settle "},
		{name: "cycled, taken over by an operator: gave up",
			machines: []sabakan.Machine{mach("a", 0, retiring, 5*m)},
			records:  records(rec("a", 40*m, 20*m, ResultCycled)),
			want:     "cycle  | held  | settle a:gave-up"},
		{name: "gave up is reported once",
			machines: []sabakan.Machine{mach("a", 0, unreachable, 29*m)},
			records:  records(rec("a", 40*m, 30*m, ResultGaveUp)),
			want:     "cycle  | held a:operator | settle "},
		{name: "gave up, healthy again: released",
			machines: []sabakan.Machine{mach("a", 0, healthy, m)},
			records:  records(rec("a", 90*m, 80*m, ResultGaveUp)),
			want:     "cycle  | held  | settle a:gave-up+healthy"},
		{name: "failed, healthy again: released",
			machines: []sabakan.Machine{mach("a", 0, healthy, m)},
			records:  records(rec("a", 90*m, 80*m, ResultFailed+"x")),
			want:     "cycle  | held  | settle a:failed: x+healthy"},
		{name: "recovered: nothing more",
			machines: []sabakan.Machine{mach("a", 0, healthy, 60*m)},
			records:  records(healthyAt(rec("a", 90*m, 80*m, ResultRecovered), 60*m)),
			want:     "cycle  | held  | settle "},
		{name: "a machine gone from the inventory: its record is left",
			machines: nil,
			records:  records(rec("a", 90*m, 80*m, ResultCycled)),
			want:     "cycle  | held  | settle "},
		{name: "settle in serial order",
			machines: []sabakan.Machine{mach("b", 0, healthy, m), mach("a", 1, healthy, m)},
			records:  records(rec("a", 30*m, 10*m, ResultCycled), rec("b", 30*m, 10*m, ResultCycled)),
			want:     "cycle  | held  | settle a:recovered+healthy b:recovered+healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.machines)
			d := Decide(Snapshot{Machines: in, Records: tt.records, Now: now, Config: tt.config})
			if got := summary(d); got != tt.want {
				t.Errorf("Decide:\n got %s\nwant %s", got, tt.want)
			}
			for serial, part := range tt.reasons {
				i := slices.IndexFunc(d.Held, func(h Hold) bool { return h.Serial == serial })
				if i < 0 || !strings.Contains(d.Held[i].Reason, part) {
					t.Errorf("hold reason of %s: %+v, want it to contain %q", serial, d.Held, part)
				}
			}
			// The same snapshot in another order decides the same.
			slices.Reverse(in)
			if got := summary(Decide(Snapshot{Machines: in, Records: tt.records, Now: now, Config: tt.config})); got != tt.want {
				t.Errorf("Decide on reversed machines: %s", got)
			}
		})
	}
}

func TestDecideAction(t *testing.T) {
	m := mach("a", 7, unreachable, 12*time.Minute+3*time.Second)
	d := Decide(Snapshot{Machines: []sabakan.Machine{m}, Now: now})
	if len(d.Cycle) != 1 {
		t.Fatalf("Cycle = %+v", d.Cycle)
	}
	a := d.Cycle[0]
	want := Action{
		Serial: "a", BMC: "10.72.17.a", Rack: "7", State: unreachable, Since: m.Status.Timestamp,
		Reason: "unreachable since 2026-11-23T11:47:57Z (12m3s)",
	}
	if a != want {
		t.Errorf("Action = %+v\nwant %+v", a, want)
	}
	r := a.Record(now)
	if r.Serial != "a" || !r.Episode.Equal(m.Status.Timestamp) || r.State != unreachable || !r.CycledAt.Equal(now) || r.Result != ResultCycled {
		t.Errorf("Record = %+v", r)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{After: 10 * time.Minute, Limit: 1, Window: 10 * time.Minute, Wait: 15 * time.Minute}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if c := (Config{After: time.Minute, Limit: 3}).WithDefaults(); c.After != time.Minute || c.Limit != 3 {
		t.Errorf("set fields overridden: %+v", c)
	}
}
