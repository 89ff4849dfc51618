package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"text/template"
	"time"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
)

// FinalStep is the last barrier: it does nothing, so that no server
// reports completion before every server finished every step.
func FinalStep() Step {
	return Step{Name: "final-barrier", Run: func(context.Context, *StepEnv) error { return nil }}
}

// ServiceConfigStep keeps a service's configuration file and process in
// line with the requested version: it renders the file, writes it when it
// changed, and restarts the service when the file changed, the service is
// not running, or the service was last (re)started for another version
// (so that the binary of the new package runs). Running it twice changes
// nothing.
func ServiceConfigStep(name, unit, path string, render func(e *StepEnv) ([]byte, error), svc ServiceManager) Step {
	return Step{Name: name, Run: func(ctx context.Context, e *StepEnv) error {
		data, err := render(e)
		if err != nil {
			return fmt.Errorf("render %s: %w", path, err)
		}
		changed, err := fileutil.WriteIfChanged(path, data, 0o644)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		active, err := svc.Active(ctx, unit)
		if err != nil {
			return err
		}
		ran, err := e.Storage.ServiceVersion(ctx, e.LRN, unit)
		if err != nil {
			return err
		}
		if !changed && active && ran == e.Request.Version {
			return nil
		}
		slog.Info("restarting service", "unit", unit, "config_changed", changed, "was_active", active, "last_version", ran)
		if err := svc.Restart(ctx, unit); err != nil {
			return fmt.Errorf("restart %s: %w", unit, err)
		}
		return e.Storage.SetServiceVersion(ctx, e.LRN, unit, e.Request.Version)
	}}
}

// OnceStep runs do once per version for the whole cluster: the workers
// take turns under an election, and whoever finds contents/<record>
// already done for the requested version skips. The record is written
// fenced by the election, after do succeeded.
func OnceStep(name, record string, do func(ctx context.Context, e *StepEnv) error) Step {
	return Step{Name: name, Run: func(ctx context.Context, e *StepEnv) error {
		leader, err := etcdutil.Campaign(ctx, e.Storage.Client, storage.LeaderContents+"/"+record, fmt.Sprint(e.LRN), 30)
		if err != nil {
			return err
		}
		defer leader.Resign(context.WithoutCancel(ctx))
		snap, err := e.Storage.Snapshot(ctx)
		if err != nil {
			return err
		}
		if rec := snap.Contents[record]; rec != nil && rec.Success && rec.Version == e.Request.Version {
			slog.Info("already done for this version", "step", name, "version", rec.Version)
			return nil
		}
		if err := do(ctx, e); err != nil {
			return err
		}
		g := storage.PutContentsRecord(snap, record, e.Request.Version)
		if _, err := leader.Do(ctx, g.Cmps, g.Ops...); err != nil {
			if errors.Is(err, etcdutil.ErrNotLeader) {
				return fmt.Errorf("lost the %s election before recording it: %w", name, err)
			}
			return err
		}
		return nil
	}}
}

// TemplateFile renders the text/template file at path for a step, with the
// boot server's facts: .LRN, .Address, .Version and .Servers. The file is
// read at each run, so a new package's template takes effect.
func TemplateFile(path, address string) func(e *StepEnv) ([]byte, error) {
	return func(e *StepEnv) ([]byte, error) {
		tmpl, err := template.New(filepath.Base(path)).Option("missingkey=error").ParseFiles(path)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		err = tmpl.Execute(&b, map[string]any{"LRN": e.LRN, "Address": address, "Version": e.Request.Version, "Servers": e.Request.Servers})
		return b.Bytes(), err
	}
}

// WithHooks returns s with before run ahead of it and after run once it
// succeeded, both within the step's timeout; either may be nil.
func WithHooks(s Step, before, after func(ctx context.Context, e *StepEnv) error) Step {
	run := s.Run
	s.Run = func(ctx context.Context, e *StepEnv) error {
		if before != nil {
			if err := before(ctx, e); err != nil {
				return err
			}
		}
		if err := run(ctx, e); err != nil {
			return err
		}
		if after != nil {
			return after(ctx, e)
		}
		return nil
	}
	return s
}

// WaitHealthy polls url (a /health endpoint) every second until it
// answers 200 or ctx ends: a service restarted by a step takes a moment
// before it serves, and the next step may depend on it.
func WaitHealthy(url string) func(ctx context.Context, e *StepEnv) error {
	return func(ctx context.Context, _ *StepEnv) error {
		var last error
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("%s: %s", url, resp.Status)
			}
			if last == nil {
				slog.Info("waiting for the service to become healthy", "url", url, "error", err)
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("not healthy: %w (last: %v)", ctx.Err(), last)
			case <-time.After(time.Second):
			}
		}
	}
}
