package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/sabakan"
)

// Inventory lists the machines (sabakan).
type Inventory interface {
	Machines(ctx context.Context) ([]sabakan.Machine, error)
}

// Power power-cycles a machine through its BMC.
type Power interface {
	PowerCycle(ctx context.Context, bmcAddr string) error
}

// Audit records an action in the audit log (sabakan's).
type Audit interface {
	Record(ctx context.Context, serial, action, detail string) error
}

// Store holds the records of past cycles. Put must fail, writing nothing,
// once the caller no longer leads.
type Store interface {
	Records(ctx context.Context) (map[string]Record, error)
	Put(ctx context.Context, r Record) error
}

// Audit actions.
const (
	AuditPowerCycle       = "power-cycle"
	AuditPowerCycleFailed = "power-cycle-failed"
	AuditRecovered        = "repair-recovered"
	AuditGaveUp           = "repair-gave-up"
)

// Defaults of Repairer.
const (
	DefaultInterval     = 30 * time.Second
	DefaultPowerTimeout = 30 * time.Second
)

// Repairer runs the read-decide-act loop. It assumes it is the only one
// doing so: run it while leading an election, with a Store fenced by that
// leadership (EtcdStore with the leader's key).
type Repairer struct {
	Inventory Inventory
	Power     Power
	Audit     Audit
	Store     Store
	Config    Config
	// Settings, if set, is read at the start of every round and replaces
	// Config (the operator's settings in etcd); a round with enabled
	// false does nothing.
	Settings func(ctx context.Context) (c Config, enabled bool, err error)
	// Interval between rounds; default DefaultInterval.
	Interval time.Duration
	// PowerTimeout bounds one power action; default DefaultPowerTimeout.
	PowerTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	metrics *metrics
	held    map[string]string // serial → hold kind last round, to log changes only
}

type metrics struct {
	cycles *prometheus.CounterVec
	held   *prometheus.GaugeVec
	rounds *prometheus.CounterVec
	last   prometheus.Gauge
}

// Register adds the repairer's metrics to reg (daemon.NewRegistry).
func (r *Repairer) Register(reg prometheus.Registerer) {
	m := &metrics{
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neco", Subsystem: "repair", Name: "cycles_total",
			Help: "Power cycles by result: cycled, failed (the power action failed), and their outcomes recovered and gave-up.",
		}, []string{"result"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "neco", Subsystem: "repair", Name: "held",
			Help: "Machines due for a power cycle that the last round held back, by reason (operator: cycled already, not recovered).",
		}, []string{"reason"}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neco", Subsystem: "repair", Name: "rounds_total",
			Help: "Decision rounds, by result (ok or error).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "neco", Subsystem: "repair", Name: "last_round_timestamp_seconds",
			Help: "When a round last completed without error.",
		}),
	}
	for _, res := range []string{ResultCycled, "failed", ResultRecovered, ResultGaveUp} {
		m.cycles.WithLabelValues(res)
	}
	for _, k := range HoldKinds {
		m.held.WithLabelValues(k)
	}
	reg.MustRegister(m.cycles, m.held, m.rounds, m.last)
	r.metrics = m
}

func (r *Repairer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run runs a round every Interval until ctx ends, then returns nil. A failed
// round is logged and the loop waits for the next tick: nothing is retried
// sooner.
func (r *Repairer) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := r.Round(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("repair: round failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Round reads a snapshot, decides and acts once. It returns the decision
// and what went wrong; a failed read acts on nothing, and a failed record
// write stops the round before any further action (the leadership may be
// gone). Rounds must not run concurrently.
func (r *Repairer) Round(ctx context.Context) (d Decision, err error) {
	defer func() {
		if r.metrics == nil {
			return
		}
		result := "ok"
		if err != nil {
			result = "error"
		} else {
			r.metrics.last.SetToCurrentTime()
		}
		r.metrics.rounds.WithLabelValues(result).Inc()
	}()
	if r.Settings != nil {
		c, enabled, err := r.Settings(ctx)
		if err != nil {
			return Decision{}, fmt.Errorf("repair: read the settings: %w", err)
		}
		if !enabled {
			r.reportHeld(nil)
			return Decision{}, nil
		}
		r.Config = c
	}
	machines, err := r.Inventory.Machines(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("repair: list machines: %w", err)
	}
	records, err := r.Store.Records(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("repair: read records: %w", err)
	}
	d = Decide(Snapshot{Machines: machines, Records: records, Now: r.now(), Config: r.Config})
	r.reportHeld(d.Held)

	var errs []error
	for _, rec := range d.Settle {
		fatal, err := r.settle(ctx, rec)
		if err != nil {
			errs = append(errs, err)
		}
		if fatal {
			return d, errors.Join(errs...)
		}
	}
	for _, a := range d.Cycle {
		fatal, err := r.cycle(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if fatal {
			break
		}
	}
	return d, errors.Join(errs...)
}

// settle writes an updated record and reports it. fatal means the round
// must stop: the record could not be written.
func (r *Repairer) settle(ctx context.Context, rec Record) (fatal bool, err error) {
	if err := r.Store.Put(ctx, rec); err != nil {
		return true, fmt.Errorf("repair: settle %s: %w", rec.Serial, err)
	}
	log := slog.With("serial", rec.Serial, "state", rec.State, "since", rec.Episode, "cycled_at", rec.CycledAt)
	var action, detail string
	switch {
	case rec.Result == ResultRecovered:
		action = AuditRecovered
		detail = fmt.Sprintf("healthy again after the power cycle at %s", rec.CycledAt.UTC().Format(time.RFC3339))
		log.Info("repair: machine recovered after a power cycle")
	case rec.Result == ResultGaveUp:
		action = AuditGaveUp
		detail = fmt.Sprintf("not healthy %s after the power cycle at %s (was %s since %s); an operator is needed",
			r.Config.WithDefaults().Wait, rec.CycledAt.UTC().Format(time.RFC3339), rec.State, rec.Episode.UTC().Format(time.RFC3339))
		log.Error("repair: machine did not recover after a power cycle; an operator is needed")
	default:
		// A failed or given-up machine is healthy again (an operator's
		// work, or its own): it may be cycled for a later failure.
		log.Info("repair: machine healthy again; it may be cycled for a new failure", "result", rec.Result)
		return false, nil
	}
	if r.metrics != nil {
		r.metrics.cycles.WithLabelValues(rec.Result).Inc()
	}
	if err := r.Audit.Record(ctx, rec.Serial, action, detail); err != nil {
		return false, fmt.Errorf("repair: audit %s of %s: %w", action, rec.Serial, err)
	}
	return false, nil
}

// cycle records, audits and makes one power cycle. fatal means the round
// must stop: the record could not be written.
func (r *Repairer) cycle(ctx context.Context, a Action) (fatal bool, err error) {
	log := slog.With("serial", a.Serial, "rack", a.Rack, "state", a.State, "since", a.Since, "bmc", a.BMC)
	rec := a.Record(r.now())
	// The record first: a crash after the power action must not cycle the
	// machine again.
	if err := r.Store.Put(ctx, rec); err != nil {
		return true, fmt.Errorf("repair: record the cycle of %s: %w", a.Serial, err)
	}
	fail := func(cause error) (bool, error) {
		rec.Result = ResultFailed + cause.Error()
		if r.metrics != nil {
			r.metrics.cycles.WithLabelValues("failed").Inc()
		}
		log.Error("repair: power cycle failed; left for an operator", "error", cause)
		err := fmt.Errorf("repair: power-cycle %s: %w", a.Serial, cause)
		if perr := r.Store.Put(ctx, rec); perr != nil {
			return true, errors.Join(err, fmt.Errorf("repair: record the failure of %s: %w", a.Serial, perr))
		}
		if aerr := r.Audit.Record(ctx, a.Serial, AuditPowerCycleFailed, rec.Result); aerr != nil {
			err = errors.Join(err, fmt.Errorf("repair: audit %s of %s: %w", AuditPowerCycleFailed, a.Serial, aerr))
		}
		return false, err
	}
	// No power action goes unaudited.
	if err := r.Audit.Record(ctx, a.Serial, AuditPowerCycle, a.Reason); err != nil {
		return fail(fmt.Errorf("audit: %w", err))
	}
	pctx, cancel := context.WithTimeout(ctx, r.powerTimeout())
	err = r.Power.PowerCycle(pctx, a.BMC)
	cancel()
	if err != nil {
		return fail(err)
	}
	if r.metrics != nil {
		r.metrics.cycles.WithLabelValues(ResultCycled).Inc()
	}
	log.Warn("repair: power-cycled a machine", "reason", a.Reason)
	return false, nil
}

func (r *Repairer) powerTimeout() time.Duration {
	if r.PowerTimeout > 0 {
		return r.PowerTimeout
	}
	return DefaultPowerTimeout
}

// reportHeld sets the held gauge and logs holds that are new or changed.
func (r *Repairer) reportHeld(held []Hold) {
	counts := map[string]int{}
	next := make(map[string]string, len(held))
	for _, h := range held {
		counts[h.Kind]++
		next[h.Serial] = h.Kind
		if r.held[h.Serial] != h.Kind {
			slog.Warn("repair: machine held", "serial", h.Serial, "kind", h.Kind, "reason", h.Reason)
		}
	}
	r.held = next
	if r.metrics != nil {
		for _, k := range HoldKinds {
			r.metrics.held.WithLabelValues(k).Set(float64(counts[k]))
		}
	}
}

// EtcdStore is the Store in etcd: storage's repair records, written only
// while LeaderKey (etcdutil.Leader.Key of the election the loop runs under)
// exists. Make one per term of leadership.
type EtcdStore struct {
	Storage   *storage.Storage
	LeaderKey string
}

// Records reads the records.
func (s EtcdStore) Records(ctx context.Context) (map[string]Record, error) {
	return s.Storage.RepairRecords(ctx)
}

// Put writes r, fenced by LeaderKey.
func (s EtcdStore) Put(ctx context.Context, r Record) error {
	return s.Storage.PutRepairRecord(ctx, s.LeaderKey, r)
}

var _ Store = EtcdStore{}
