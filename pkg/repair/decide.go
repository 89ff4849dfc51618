// Package repair power-cycles a machine that has been unhealthy or
// unreachable for too long, once per failure, through its BMC; a machine
// that does not come back is left for an operator. One boot server at a time
// runs the loop (Repairer), under the state setter's leadership; what to do
// is a pure function (Decide) of the machines in sabakan and the records of
// past cycles in etcd (storage.RepairRecord at /neco/repair/<serial>).
package repair

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/sabakan"
)

// Defaults of Config.
const (
	DefaultAfter  = 10 * time.Minute
	DefaultLimit  = 1
	DefaultWindow = 10 * time.Minute
	DefaultWait   = 15 * time.Minute
)

// Config is the repair policy. Zero fields take the defaults.
type Config struct {
	// After is how long a machine must be unhealthy or unreachable before
	// it is cycled.
	After time.Duration
	// Limit is the number of cycles allowed within any Window, counted from
	// the records.
	Limit  int
	Window time.Duration
	// Wait is how long a cycled machine has to become healthy before the
	// loop gives up on it.
	Wait time.Duration
}

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.After == 0 {
		c.After = DefaultAfter
	}
	if c.Limit == 0 {
		c.Limit = DefaultLimit
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	return c
}

// Record is the record of a machine's last cycle, stored in etcd.
type Record = storage.RepairRecord

// Results of a Record.
const (
	ResultCycled    = "cycled"
	ResultRecovered = "recovered"
	ResultGaveUp    = "gave-up"
	// ResultFailed + the error: the power action failed.
	ResultFailed = "failed: "
)

// Snapshot is everything one decision looks at.
type Snapshot struct {
	Machines []sabakan.Machine
	Records  map[string]Record // by serial
	Now      time.Time
	Config   Config
}

// Decision is what to do in one round.
type Decision struct {
	// Cycle are the machines to power-cycle, oldest failure first.
	Cycle []Action
	// Held are machines due for a cycle that are not cycled, by serial.
	Held []Hold
	// Settle are records to update, by serial: a cycle's outcome
	// (recovered or gave-up), or a machine healthy again after a cycle
	// that failed or gave up (HealthyAt set, Result kept).
	Settle []Record
}

// Action is one power cycle.
type Action struct {
	Serial string
	BMC    string // the BMC's address
	Rack   string
	State  sabakan.MachineState
	Since  time.Time // the machine's Status.Timestamp: the episode
	Reason string
}

// Record is the record to write before the power action.
func (a Action) Record(now time.Time) Record {
	return Record{Serial: a.Serial, Episode: a.Since, State: a.State, CycledAt: now, Result: ResultCycled}
}

// Hold is a machine due for a cycle that is not cycled.
type Hold struct {
	Serial string
	Kind   string // one of the Hold* kinds, the label of the held gauge
	Reason string
}

// Kinds of Hold.
const (
	HoldRackWide  = "rack-wide"
	HoldNoBMC     = "no-bmc"
	HoldRateLimit = "rate-limit"
	// HoldOperator: the machine was cycled for this failure already and
	// did not recover, or the cycle failed.
	HoldOperator = "operator"
)

// HoldKinds lists the kinds of Hold.
var HoldKinds = []string{HoldRackWide, HoldNoBMC, HoldRateLimit, HoldOperator}

func failing(s sabakan.MachineState) bool {
	return s == sabakan.StateUnhealthy || s == sabakan.StateUnreachable
}

// bmcAddress is the machine's BMC address, or "".
func bmcAddress(m *sabakan.Machine) string {
	if m.Spec.BMC.IPv4 != "" {
		return m.Spec.BMC.IPv4
	}
	return m.Info.BMC.IPv4.Address
}

func rackOf(m *sabakan.Machine) string { return strconv.FormatUint(uint64(m.Spec.Rack), 10) }

// Decide returns what to do. The rules, in order:
//
//   - Candidates are machines unhealthy or unreachable for at least After
//     (Now − Status.Timestamp); never boot servers, never other states.
//   - Once per failure: a machine whose record has its current
//     Status.Timestamp as Episode, or whose record has no HealthyAt (it has
//     not been seen healthy since it was cycled), is not cycled again. A
//     "cycled" record waits for its outcome; after a "gave-up" or "failed"
//     one the machine is held for an operator.
//   - Rack-wide failure: when at least 2 machines of a rack are unhealthy or
//     unreachable and they are at least half of its machines that are not
//     retired, its candidates are held: a power cycle does not fix a rack.
//   - A machine without a BMC address is held.
//   - Rate limit: at most Limit cycles within Window, counting the records
//     whose CycledAt lies within Window before Now; oldest failures first.
//
// Settle: a "cycled" record whose machine is healthy becomes "recovered";
// one whose machine is not healthy at CycledAt+Wait becomes "gave-up". A
// "gave-up" or "failed" record whose machine is healthy gets HealthyAt. A
// record of a machine no longer in the inventory is left as it is.
func Decide(s Snapshot) Decision {
	cfg := s.Config.WithDefaults()
	var d Decision

	machines := slices.Clone(s.Machines)
	slices.SortFunc(machines, func(a, b sabakan.Machine) int { return strings.Compare(a.Spec.Serial, b.Spec.Serial) })

	// Racks whose failing machines are at least half of the rack.
	type count struct{ failing, total int }
	racks := map[uint]*count{}
	for i := range machines {
		m := &machines[i]
		if m.Status.State == sabakan.StateRetired {
			continue
		}
		c := racks[m.Spec.Rack]
		if c == nil {
			c = &count{}
			racks[m.Spec.Rack] = c
		}
		c.total++
		if failing(m.Status.State) {
			c.failing++
		}
	}

	var due []*sabakan.Machine
	for i := range machines {
		m := &machines[i]
		st := m.Status.State
		rec, hasRec := s.Records[m.Spec.Serial]
		if hasRec {
			if settled, ok := settle(rec, m, s.Now, cfg); ok {
				d.Settle = append(d.Settle, settled)
				rec = settled
			}
		}
		if m.Spec.Role == sabakan.RoleBoot || !failing(st) || s.Now.Sub(m.Status.Timestamp) < cfg.After {
			continue
		}
		if hasRec && (rec.Episode.Equal(m.Status.Timestamp) || rec.HealthyAt.IsZero()) {
			switch {
			case rec.Result == ResultGaveUp:
				d.Held = append(d.Held, Hold{m.Spec.Serial, HoldOperator, fmt.Sprintf(
					"gave up: not healthy %s after the power cycle at %s; left for an operator",
					cfg.Wait, rec.CycledAt.UTC().Format(time.RFC3339))})
			case strings.HasPrefix(rec.Result, ResultFailed):
				d.Held = append(d.Held, Hold{m.Spec.Serial, HoldOperator, fmt.Sprintf(
					"power cycle at %s %s; left for an operator",
					rec.CycledAt.UTC().Format(time.RFC3339), rec.Result)})
			}
			continue
		}
		if c := racks[m.Spec.Rack]; c.failing >= 2 && 2*c.failing >= c.total {
			d.Held = append(d.Held, Hold{m.Spec.Serial, HoldRackWide, fmt.Sprintf(
				"rack-wide failure: power or network, left for an operator (%d of %d machines of rack %d unhealthy or unreachable)",
				c.failing, c.total, m.Spec.Rack)})
			continue
		}
		if bmcAddress(m) == "" {
			d.Held = append(d.Held, Hold{m.Spec.Serial, HoldNoBMC, "no BMC address: cannot power-cycle; left for an operator"})
			continue
		}
		due = append(due, m)
	}

	recent := 0
	for _, r := range s.Records {
		if !r.CycledAt.IsZero() && r.CycledAt.After(s.Now.Add(-cfg.Window)) {
			recent++
		}
	}
	allowed := max(cfg.Limit-recent, 0)
	slices.SortStableFunc(due, func(a, b *sabakan.Machine) int { return a.Status.Timestamp.Compare(b.Status.Timestamp) })
	for i, m := range due {
		if i >= allowed {
			d.Held = append(d.Held, Hold{m.Spec.Serial, HoldRateLimit, fmt.Sprintf(
				"rate limit: %d cycles in the last %s", recent, cfg.Window)})
			continue
		}
		d.Cycle = append(d.Cycle, Action{
			Serial: m.Spec.Serial,
			BMC:    bmcAddress(m),
			Rack:   rackOf(m),
			State:  m.Status.State,
			Since:  m.Status.Timestamp,
			Reason: fmt.Sprintf("%s since %s (%s)", m.Status.State,
				m.Status.Timestamp.UTC().Format(time.RFC3339), s.Now.Sub(m.Status.Timestamp).Round(time.Second)),
		})
	}
	slices.SortFunc(d.Held, func(a, b Hold) int { return cmp.Compare(a.Serial, b.Serial) })
	return d
}

// settle returns rec updated with what became of the machine, if anything.
func settle(rec Record, m *sabakan.Machine, now time.Time, cfg Config) (Record, bool) {
	healthy := m.Status.State == sabakan.StateHealthy
	switch {
	case rec.Result == ResultCycled && healthy:
		rec.Result, rec.HealthyAt = ResultRecovered, now
		return rec, true
	case rec.Result == ResultCycled && !now.Before(rec.CycledAt.Add(cfg.Wait)):
		rec.Result = ResultGaveUp
		return rec, true
	case rec.Result != ResultCycled && rec.HealthyAt.IsZero() && healthy:
		rec.HealthyAt = now
		return rec, true
	}
	return rec, false
}
