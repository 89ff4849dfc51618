package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/cke/sabakan"
	"github.com/openneco/neco/pkg/cke/storage"
)

// sabakanTimeout bounds one query of sabakan.
const sabakanTimeout = 20 * time.Second

var sabakanClient = &http.Client{Timeout: sabakanTimeout}

// integrateSabakan runs the sabakan integration once, when it is enabled:
// query the machines, generate cluster.yml and store it when it differs,
// as an operation in the history. It reports whether it stored one. A
// sabakan that does not answer or a cluster that cannot be generated is
// not the engine's failure: it is in the report, and the next tick tries
// again.
func (ld *leader) integrateSabakan(ctx context.Context, cfg *storage.Config) (bool, *storage.SabakanReport, error) {
	if !cfg.Sabakan.Enabled() {
		return false, nil, nil
	}
	report := &storage.SabakanReport{}
	fail := func(err error) (bool, *storage.SabakanReport, error) {
		report.Error = err.Error()
		ld.metrics.sabakan.WithLabelValues("error").Inc()
		slog.Warn("cke: sabakan integration", "error", err)
		return false, report, nil
	}
	if err := sabakan.ValidateTemplate(cfg.Sabakan.Template); err != nil {
		return fail(err)
	}
	qctx, cancel := context.WithTimeout(ctx, sabakanTimeout)
	machines, err := sabakan.Query(qctx, sabakanClient, cfg.Sabakan.URL)
	cancel()
	if err != nil {
		return fail(err)
	}
	res, err := sabakan.Generate(sabakan.Input{Template: cfg.Sabakan.Template, Current: cfg.Cluster,
		Machines: machines, Constraints: cfg.Constraints, Now: time.Now()})
	if err != nil {
		return fail(err)
	}
	report.Machines, report.Warnings = len(machines), res.Warnings
	if res.Cluster == nil {
		ld.metrics.sabakan.WithLabelValues("unchanged").Inc()
		return false, report, nil
	}

	o := decide.Op{Kind: decide.UpdateCluster, Nodes: cke.Addresses(res.Cluster.Nodes), Reason: strings.Join(res.Changes, "; ")}
	rec := &storage.Record{Status: storage.RecordRunning, Phase: decide.PhaseSabakan, Op: o, Leader: ld.cfg.Name, Start: time.Now().UTC()}
	for _, c := range res.Changes {
		rec.Steps = append(rec.Steps, storage.Step{Name: c, Start: rec.Start, End: rec.Start})
	}
	if err := ld.storage.NewRecord(ctx, ld.l, rec); err != nil {
		return false, report, err
	}
	err = ld.storage.PutGeneratedCluster(ctx, ld.l, cfg, res.Cluster)
	rec.End, rec.Status = time.Now().UTC(), storage.RecordCompleted
	if err != nil {
		rec.Status, rec.Error = storage.RecordFailed, err.Error()
	}
	ld.metrics.operations.WithLabelValues(string(o.Kind), string(rec.Status)).Inc()
	if uerr := ld.storage.UpdateRecord(context.WithoutCancel(ctx), ld.l, rec); uerr != nil {
		return false, report, errors.Join(err, uerr)
	}
	if errors.Is(err, cke.ErrConflict) {
		// Someone changed cluster.yml or the constraints meanwhile: decide
		// again from what they wrote.
		return true, report, nil
	}
	if err != nil {
		return false, report, err
	}
	ld.metrics.sabakan.WithLabelValues("updated").Inc()
	report.Changes = res.Changes
	slog.Info("cke: sabakan integration updated cluster.yml", "id", rec.ID, "changes", res.Changes)
	return true, report, nil
}
