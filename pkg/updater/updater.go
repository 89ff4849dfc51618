package updater

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/release"
	"github.com/openneco/neco/pkg/neco/storage"
)

// Source finds the latest release an environment follows.
type Source interface {
	Latest(ctx context.Context, env neco.Env, skipped func(tag string, err error)) (string, error)
}

// Updater is the neco-updater daemon's logic.
type Updater struct {
	Storage *storage.Storage
	// Name identifies this instance in the election (the host name).
	Name string
	// SessionTTL is the leader lease in seconds (default 60).
	SessionTTL int
	// NewSource makes the release source from the current configuration
	// (default release.New).
	NewSource func(neco.Config) (Source, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Metrics, when set, are updated; see NewMetrics.
	Metrics *Metrics

	// PollInterval, when set, makes the updater re-read etcd at this
	// interval instead of watching it (benchmarks compare the two).
	PollInterval time.Duration

	// OnLeader, if set, is called when this instance becomes leader (tests).
	OnLeader func()
}

// Metrics of the updater.
type Metrics struct {
	leader   prometheus.Gauge
	checks   *prometheus.CounterVec
	requests *prometheus.CounterVec
}

// NewMetrics registers the updater's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "neco_updater_leader", Help: "1 while this instance is the leader"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "neco_updater_release_checks_total", Help: "GitHub release checks by result"}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "neco_updater_actions_total",
			Help: "update requests written by kind (new-request, reconfigure, stop)"}, []string{"kind"}),
	}
	reg.MustRegister(m.leader, m.checks, m.requests)
	return m
}

// errLost ends a term of leadership.
var errLost = errors.New("updater: leadership lost")

// Run campaigns for leadership and leads until ctx ends; it returns nil on
// cancellation. A lost leadership starts a new campaign.
func (u *Updater) Run(ctx context.Context) error {
	if u.Now == nil {
		u.Now = time.Now
	}
	if u.NewSource == nil {
		u.NewSource = func(c neco.Config) (Source, error) { return release.New(c) }
	}
	ttl := u.SessionTTL
	if ttl == 0 {
		ttl = 60
	}
	for {
		leader, err := etcdutil.Campaign(ctx, u.Storage.Client, storage.LeaderUpdater, u.Name, ttl)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			slog.Error("campaign failed", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		slog.Info("leading the updater election", "name", u.Name)
		u.setLeader(1)
		if u.OnLeader != nil {
			u.OnLeader()
		}
		err = u.lead(ctx, leader)
		u.setLeader(0)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		leader.Resign(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		slog.Warn("leadership ended; campaigning again", "error", err)
	}
}

func (u *Updater) setLeader(v float64) {
	if u.Metrics != nil {
		u.Metrics.leader.Set(v)
	}
}

func (u *Updater) count(vec func(*Metrics) *prometheus.CounterVec, label string) {
	if u.Metrics != nil {
		vec(u.Metrics).WithLabelValues(label).Inc()
	}
}

// lead runs the read-decide-act loop while leader holds.
func (u *Updater) lead(ctx context.Context, leader *etcdutil.Leader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-leader.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()

	var lastCheck time.Time
	var lastSource neco.Config
	for {
		if ctx.Err() != nil {
			return errLost
		}
		snap, err := u.Storage.Snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return errLost
			}
			slog.Error("read snapshot", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		cfg := snap.Config
		now := u.Now()
		// Check GitHub when due, or at once when its settings changed.
		if sourceChanged(lastSource, cfg) || !now.Before(lastCheck.Add(cfg.CheckUpdateInterval)) {
			lastCheck, lastSource = now, cfg
			if latest, ok := u.check(ctx, cfg); ok && neco.Newer(latest, snap.Latest) {
				g := storage.SetLatest(snap, latest)
				if _, err := leader.Do(ctx, g.Cmps, g.Ops...); err != nil {
					if errors.Is(err, etcdutil.ErrNotLeader) {
						return err
					}
					if !errors.Is(err, etcdutil.ErrConflict) {
						slog.Error("record latest release", "error", err)
					}
				} else {
					slog.Info("new release found", "version", latest, "previous", snap.Latest)
				}
				continue
			}
		}

		act := NextAction(snap, now)
		switch act.Kind {
		case NewRequest, Reconfigure:
			req := &neco.UpdateRequest{ID: snap.Revision, Version: act.Version, Servers: act.Servers, StartedAt: now.UTC()}
			g := storage.PutRequest(snap, req)
			if err := u.do(ctx, leader, g); err != nil {
				if errors.Is(err, etcdutil.ErrNotLeader) {
					return err
				}
				continue
			}
			u.count(func(m *Metrics) *prometheus.CounterVec { return m.requests }, act.Kind.String())
			slog.Info("update requested", "kind", act.Kind.String(), "id", req.ID, "version", req.Version, "servers", req.Servers, "reason", act.Reason)
			continue
		case Stop:
			if err := u.do(ctx, leader, storage.StopRequest(snap, act.Reason)); err != nil {
				if errors.Is(err, etcdutil.ErrNotLeader) {
					return err
				}
				continue
			}
			u.count(func(m *Metrics) *prometheus.CounterVec { return m.requests }, act.Kind.String())
			slog.Error("update stopped; run neco recover after fixing the cause", "id", snap.Request.ID, "version", snap.Request.Version, "reason", act.Reason)
			continue
		}

		wake := lastCheck.Add(cfg.CheckUpdateInterval)
		if !act.WakeAt.IsZero() && act.WakeAt.Before(wake) {
			wake = act.WakeAt
		}
		slog.Debug("waiting", "reason", act.Reason, "until", wake)
		wait := max(wake.Sub(u.Now()), 10*time.Millisecond)
		if u.PollInterval > 0 {
			sleep(ctx, min(wait, u.PollInterval))
			continue
		}
		u.Storage.WaitChange(ctx, snap.Revision, wait)
	}
}

func (u *Updater) do(ctx context.Context, leader *etcdutil.Leader, g storage.Guarded) error {
	_, err := leader.Do(ctx, g.Cmps, g.Ops...)
	if err != nil && !errors.Is(err, etcdutil.ErrConflict) {
		slog.Error("write update request", "error", err)
	}
	return err
}

// sourceChanged reports whether the settings that select releases changed.
func sourceChanged(a, b neco.Config) bool {
	return a.Env != b.Env || a.GitHubAPIURL != b.GitHubAPIURL || a.GitHubOwner != b.GitHubOwner ||
		a.GitHubRepo != b.GitHubRepo || a.GitHubToken != b.GitHubToken || a.Proxy != b.Proxy
}

// check asks the release source for the latest version.
func (u *Updater) check(ctx context.Context, cfg neco.Config) (string, bool) {
	if cfg.Env == neco.EnvNone {
		return "", false
	}
	src, err := u.NewSource(cfg)
	if err != nil {
		slog.Error("release source", "error", err)
		return "", false
	}
	latest, err := src.Latest(ctx, cfg.Env, func(tag string, err error) {
		slog.Warn("ignoring a release with a malformed tag", "tag", tag, "error", err)
	})
	switch {
	case errors.Is(err, release.ErrNoRelease):
		u.count(func(m *Metrics) *prometheus.CounterVec { return m.checks }, "none")
		return "", false
	case err != nil:
		u.count(func(m *Metrics) *prometheus.CounterVec { return m.checks }, "error")
		slog.Error("check releases", "env", cfg.Env, "error", err)
		return "", false
	}
	u.count(func(m *Metrics) *prometheus.CounterVec { return m.checks }, "ok")
	return latest, true
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
