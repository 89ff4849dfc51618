package statesetter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/sabakan"
)

// Inventory is the part of sabakan the setter uses.
type Inventory interface {
	Machines(ctx context.Context) ([]sabakan.Machine, error)
	SetState(ctx context.Context, serial string, state sabakan.MachineState) error
}

// MemberSource lists the failure detector's members.
type MemberSource interface {
	Members(ctx context.Context) ([]membership.Member, error)
}

// Setter runs the read-decide-act loop.
type Setter struct {
	Inventory   Inventory
	Members     MemberSource
	Interval    time.Duration
	GracePeriod time.Duration

	unhealthySince map[string]time.Time
	metrics        *metrics
}

type metrics struct {
	changes *prometheus.CounterVec
	runs    *prometheus.CounterVec
	last    prometheus.Gauge
}

// Register adds the setter's metrics to reg.
func (s *Setter) Register(reg prometheus.Registerer) {
	s.metrics = &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "state_setter", Name: "changes_total", Help: "Machine state changes made, by target state.",
		}, []string{"state"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "state_setter", Name: "runs_total", Help: "Decision rounds, by result (ok or error).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "state_setter", Name: "last_success_timestamp_seconds", Help: "When a round last completed.",
		}),
	}
	reg.MustRegister(s.metrics.changes, s.metrics.runs, s.metrics.last)
}

// Run decides and applies every Interval until ctx ends. A failing round
// (sabakan or the member list unreachable) is logged and retried; it never
// guesses states from partial information. Each Run (a term of leadership)
// starts grace periods anew: what happened before it is unknown.
func (s *Setter) Run(ctx context.Context) error {
	s.unhealthySince = nil
	tick := time.NewTicker(s.Interval)
	defer tick.Stop()
	for {
		err := s.RunOnce(ctx)
		if s.metrics != nil {
			result := "ok"
			if err != nil {
				result = "error"
			} else {
				s.metrics.last.SetToCurrentTime()
			}
			s.metrics.runs.WithLabelValues(result).Inc()
		}
		if err != nil && ctx.Err() == nil {
			slog.Warn("state setter: round failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RunOnce reads a snapshot, decides and applies the changes.
func (s *Setter) RunOnce(ctx context.Context) error {
	machines, err := s.Inventory.Machines(ctx)
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	members, err := s.Members.Members(ctx)
	if err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	changes, since := Decide(Snapshot{
		Machines: machines, Members: members, UnhealthySince: s.unhealthySince,
		Now: time.Now(), GracePeriod: s.GracePeriod,
	})
	s.unhealthySince = since
	var errs []error
	for _, c := range changes {
		if err := s.Inventory.SetState(ctx, c.Serial, c.To); err != nil {
			// Another actor may have moved the machine meanwhile; the next
			// round sees the new state.
			errs = append(errs, fmt.Errorf("set %s to %s: %w", c.Serial, c.To, err))
			continue
		}
		slog.Info("state setter: machine state changed", "serial", c.Serial, "from", c.From, "to", c.To, "reason", c.Reason)
		if s.metrics != nil {
			s.metrics.changes.WithLabelValues(string(c.To)).Inc()
		}
	}
	return errors.Join(errs...)
}
