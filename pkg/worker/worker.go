package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/release"
	"github.com/openneco/neco/pkg/neco/storage"
)

// PackageName is the Debian package the worker keeps up to date.
const PackageName = "neco"

// ErrHandover is returned by Run after a new package was installed: the
// process should exit so that the new binary runs (on a boot server the
// package's postinst has already restarted the service).
var ErrHandover = errors.New("worker: new version installed; handing over to it")

// Step is one update step, run on every boot server of the request at the
// same time, between two barriers. Run must be idempotent: after an abort
// and `neco recover` it runs again, and it runs again at once when it
// failed because etcd was briefly unavailable (a leader change while
// another boot server restarts its member, say), until its timeout.
type Step struct {
	Name string
	// Timeout bounds Run; zero means the step-timeout configuration.
	Timeout time.Duration
	Run     func(ctx context.Context, e *StepEnv) error
}

// RunRetrying runs the step, and runs it again after stepRetryInterval
// while it fails because etcd was unavailable and ctx lasts.
func (s Step) RunRetrying(ctx context.Context, e *StepEnv) error {
	err := s.Run(ctx, e)
	for err != nil && ctx.Err() == nil && etcdutil.Unavailable(err) {
		slog.Warn("update step failed while etcd was unavailable; running it again", "name", s.Name, "error", err)
		sleep(ctx, stepRetryInterval)
		if ctx.Err() == nil {
			err = s.Run(ctx, e)
		}
	}
	return err
}

// StepEnv is what a step knows about the update it is part of.
type StepEnv struct {
	LRN     int
	Request *neco.UpdateRequest
	// Index is the position of LRN in Request.Servers (0 = lowest LRN).
	Index   int
	Storage *storage.Storage
}

// Downloader fetches the package of a version into dir.
type Downloader interface {
	Download(ctx context.Context, env neco.Env, version, dir string) (string, error)
}

// Worker is the neco-worker daemon's logic for one boot server.
type Worker struct {
	LRN       int
	Storage   *storage.Storage
	Installer deb.Installer
	// NewDownloader makes the downloader from the current configuration
	// (default release.New).
	NewDownloader func(neco.Config) (Downloader, error)
	Steps         []Step
	// DownloadDir holds downloaded packages (default os.TempDir()).
	DownloadDir string
	// Metrics, when set, are updated; see NewMetrics.
	Metrics *Metrics
	// PollInterval, when set, makes the worker re-read etcd at this
	// interval instead of watching it (benchmarks compare the two).
	PollInterval time.Duration

	posted int64
}

// Metrics of the worker.
type Metrics struct {
	stepSeconds *prometheus.HistogramVec
	steps       *prometheus.CounterVec
	installs    *prometheus.CounterVec
}

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "neco_worker_step_duration_seconds", Help: "time each update step ran",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"step"}),
		steps:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "neco_worker_steps_total", Help: "update steps run by result"}, []string{"step", "result"}),
		installs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "neco_worker_installs_total", Help: "package installations by result"}, []string{"result"}),
	}
	reg.MustRegister(m.stepSeconds, m.steps, m.installs)
	return m
}

// Run reconciles until ctx ends (nil) or a new version was installed
// (ErrHandover).
func (w *Worker) Run(ctx context.Context) error {
	if w.NewDownloader == nil {
		w.NewDownloader = func(c neco.Config) (Downloader, error) { return release.New(c) }
	}
	// Started by the package's postinst, dpkg may not have finished yet.
	installed, err := w.Installer.InstalledVersion(ctx, PackageName)
	for errors.Is(err, deb.ErrInProgress) {
		slog.Info("waiting for dpkg to finish", "error", err)
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return nil
		}
		installed, err = w.Installer.InstalledVersion(ctx, PackageName)
	}
	if err != nil && !errors.Is(err, deb.ErrNotInstalled) {
		return fmt.Errorf("worker: installed version: %w", err)
	}
	slog.Info("neco-worker started", "lrn", w.LRN, "installed", installed)
	for {
		if ctx.Err() != nil {
			return nil
		}
		snap, err := w.Storage.Snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			slog.Error("read snapshot", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		view := View{Request: snap.Request, Statuses: snap.CurrentStatuses(), Self: w.LRN, Installed: installed,
			Env: snap.Config.Env, Posted: w.posted, NumSteps: len(w.Steps)}
		act := Decide(view)
		switch act.Kind {
		case Wait:
			slog.Debug("waiting", "reason", act.Reason)
			if w.PollInterval > 0 {
				sleep(ctx, w.PollInterval)
				continue
			}
			w.Storage.WaitChange(ctx, snap.Revision, time.Minute)
		case Install:
			slog.Info("installing the requested version", "version", act.Version, "reason", act.Reason)
			err := w.install(ctx, snap.Config, act.Version)
			if err == nil {
				return ErrHandover
			}
			if ctx.Err() != nil {
				return nil
			}
			w.post(ctx, snap, &neco.UpdateStatus{Step: 0, StepName: "install", Cond: neco.CondAborted,
				Message: fmt.Sprintf("install %s: %v", act.Version, err)})
		case Begin:
			w.post(ctx, snap, w.barrier(1))
		case Abort:
			slog.Error("aborting the update", "reason", act.Reason)
			w.post(ctx, snap, &neco.UpdateStatus{Step: act.Step, StepName: w.stepName(act.Step), Cond: neco.CondAborted, Message: act.Reason})
		case RunStep:
			if err := w.runStep(ctx, snap, act.Step); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				slog.Error("update step failed", "step", act.Step, "name", w.stepName(act.Step), "error", err)
				w.post(ctx, snap, &neco.UpdateStatus{Step: act.Step, StepName: w.stepName(act.Step), Cond: neco.CondAborted, Message: err.Error()})
				continue
			}
			next := w.barrier(act.Step + 1)
			if act.Step == len(w.Steps) {
				next = &neco.UpdateStatus{Step: act.Step, StepName: w.stepName(act.Step), Cond: neco.CondCompleted}
			}
			w.post(ctx, snap, next)
			if next.Cond == neco.CondCompleted {
				slog.Info("update completed", "version", snap.Request.Version, "request", snap.Request.ID)
			}
		}
	}
}

func (w *Worker) stepName(n int) string {
	if n < 1 || n > len(w.Steps) {
		return ""
	}
	return w.Steps[n-1].Name
}

func (w *Worker) barrier(n int) *neco.UpdateStatus {
	return &neco.UpdateStatus{Step: n, StepName: w.stepName(n), Cond: neco.CondRunning}
}

// post writes this worker's status for the snapshot's request. A conflict
// (the request changed meanwhile) is not an error: the loop re-reads.
// Any other error leaves the outcome unknown (etcd may have applied the
// write and lost the answer), so the request counts as posted by this
// process either way: a status it finds later is its own, not the trace of
// a process that died mid-update.
func (w *Worker) post(ctx context.Context, snap *storage.Snapshot, st *neco.UpdateStatus) {
	st.RequestID, st.Version = snap.Request.ID, snap.Request.Version
	err := w.Storage.PutStatus(ctx, snap, w.LRN, st)
	switch {
	case err == nil:
		w.posted = snap.Request.ID
	case errors.Is(err, etcdutil.ErrConflict):
		slog.Info("request changed while posting status; re-reading", "step", st.Step)
	default:
		w.posted = snap.Request.ID
		slog.Error("post status", "error", err)
		sleep(ctx, time.Second)
	}
}

func (w *Worker) runStep(ctx context.Context, snap *storage.Snapshot, n int) error {
	step := w.Steps[n-1]
	timeout := step.Timeout
	if timeout == 0 {
		timeout = snap.Config.StepTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := &StepEnv{LRN: w.LRN, Request: snap.Request, Index: snap.Request.Index(w.LRN), Storage: w.Storage}
	start := time.Now()
	slog.Info("running update step", "step", n, "name", step.Name, "timeout", timeout)
	err := step.RunRetrying(sctx, env)
	if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = fmt.Errorf("step %s timed out after %s: %w", step.Name, timeout, err)
	}
	if w.Metrics != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		w.Metrics.steps.WithLabelValues(step.Name, result).Inc()
		w.Metrics.stepSeconds.WithLabelValues(step.Name).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return fmt.Errorf("step %d (%s): %w", n, step.Name, err)
	}
	slog.Info("update step done", "step", n, "name", step.Name, "elapsed", time.Since(start))
	return nil
}

// install downloads, verifies and installs version. On any error nothing
// is installed (dpkg -i of a verified package is the last action).
func (w *Worker) install(ctx context.Context, cfg neco.Config, version string) (err error) {
	defer func() {
		if w.Metrics != nil {
			result := "ok"
			if err != nil {
				result = "error"
			}
			w.Metrics.installs.WithLabelValues(result).Inc()
		}
	}()
	dl, err := w.NewDownloader(cfg)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(w.DownloadDir, "neco-download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path, err := dl.Download(ctx, cfg.Env, version, dir)
	if err != nil {
		return err
	}
	info, err := deb.Inspect(ctx, path)
	if err != nil {
		return err
	}
	if info.Package != PackageName || info.Version != version {
		return fmt.Errorf("worker: downloaded package is %s %s, want %s %s", info.Package, info.Version, PackageName, version)
	}
	if err := w.Installer.Install(ctx, path); err != nil {
		// dpkg runs in a unit of its own and carries on when the client
		// that waits for it is interrupted — as it is on every upgrade:
		// the package's postinst restarts this very service, whose stop
		// signals every process in it. What dpkg did decides.
		if got, ierr := w.awaitDpkg(ctx); ierr == nil && got == version {
			slog.Info("installed; the installer's client was interrupted but dpkg finished", "version", version, "error", err)
			return nil
		}
		return err
	}
	got, err := w.Installer.InstalledVersion(ctx, PackageName)
	if err != nil {
		return err
	}
	if got != version {
		return fmt.Errorf("worker: dpkg reports %s installed after installing %s", got, version)
	}
	slog.Info("installed", "version", version)
	return nil
}

// awaitDpkg returns the installed version once dpkg is no longer busy
// with the package (or ctx ends). A query that fails is asked again for a
// while: the stop of this service signals every process it starts, a
// dpkg-query forked at that moment included.
func (w *Worker) awaitDpkg(ctx context.Context) (string, error) {
	deadline := time.Now().Add(dpkgWait)
	for {
		v, err := w.Installer.InstalledVersion(ctx, PackageName)
		if err == nil || errors.Is(err, deb.ErrNotInstalled) || time.Now().After(deadline) {
			return v, err
		}
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
}

// dpkgWait bounds how long an interrupted installation is waited for.
const dpkgWait = 5 * time.Minute

// stepRetryInterval is the pause before a step that met an unavailable
// etcd runs again.
const stepRetryInterval = time.Second

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
