package store

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
)

// Janitor timing.
const (
	sweepInterval  = 2 * time.Second
	expireInterval = time.Hour
	// tidyChunk is how many machines one tidying transaction touches: one
	// comparison and at most two operations each.
	tidyChunk = 60
)

// RunJanitor campaigns for the janitor election under the name and, while
// leading, tidies registrations (Sweep) every few seconds and deletes audit
// entries older than AuditRetention every hour. ttl is the election
// session's TTL in seconds: how long a dead leader blocks its successor.
// Leader or not, it removes abandoned registrations every few seconds, which
// must not wait for a dead leader (see abandoned.go). It returns nil when ctx
// ends.
func (s *Store) RunJanitor(ctx context.Context, name string, ttl int) error {
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.removeAbandonedLoop(ctx)
	}()
	defer func() { <-loopDone }()
	for ctx.Err() == nil {
		leader, err := etcdutil.Campaign(ctx, s.client, KeyJanitor, name, ttl)
		if err != nil {
			if ctx.Err() == nil {
				slog.Warn("store: janitor campaign failed; retrying", "error", err)
				sleep(ctx, 5*time.Second)
			}
			continue
		}
		slog.Info("store: this server is the janitor", "name", name)
		s.lead(ctx, leader)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		leader.Resign(rctx)
		cancel()
	}
	return nil
}

func (s *Store) lead(ctx context.Context, leader *etcdutil.Leader) {
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	var lastExpire time.Time
	for {
		if time.Since(lastExpire) >= expireInterval {
			if err := s.ExpireAudit(ctx, leader); err != nil {
				slog.Warn("store: expiring audit entries failed", "error", err)
			} else {
				lastExpire = time.Now()
			}
		}
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("store: tidying registrations failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-leader.Lost():
			slog.Warn("store: lost the janitor election")
			return
		case <-sweep.C:
		}
	}
}

// ExpireAudit deletes the audit entries of the days older than
// AuditRetention, in a transaction fenced by the janitor's leadership.
func (s *Store) ExpireAudit(ctx context.Context, leader *etcdutil.Leader) error {
	_, err := leader.Do(ctx, nil, expireAuditOp(s.opts.Now()))
	return err
}

// Sweep tidies registrations once: it deletes the machines of registrations
// whose record vanished (their writer died or gave up and its lease
// expired), rewrites the machines of committed registrations without the
// registration id, and then deletes those records. Every step is a
// transaction guarded by the revisions it read, so concurrent sweeps and API
// calls stay correct; the election only avoids duplicate work.
func (s *Store) Sweep(ctx context.Context) error {
	if err := s.sync(ctx); err != nil {
		return err
	}
	orphans, committed, empty := s.idx.tidyWork()
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	note(s.removeAbandoned(ctx, orphans))
	for _, entries := range committed {
		// Chunks bounded like the registration's: by count and by bytes.
		for start := 0; start < len(entries); {
			var cmps []clientv3.Cmp
			var ops []clientv3.Op
			size := 0
			for ; start < len(entries) && len(ops) < tidyChunk; start++ {
				e := entries[start]
				data, err := json.Marshal(record{Machine: *e.m})
				if err != nil {
					return err
				}
				if len(ops) > 0 && size+len(data) > chunkBytes {
					break
				}
				size += len(data)
				cmps = append(cmps, etcdutil.Unchanged(machineKey(e.m.Spec.Serial), e.modRev))
				ops = append(ops, clientv3.OpPut(machineKey(e.m.Spec.Serial), string(data)))
			}
			_, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
			note(etcdErr("tidy registered machines", err))
		}
	}
	// A committed record no machine names any more can go. The index was
	// current when tidyWork ran, and nothing writes a registration id after
	// its commit, so none can appear.
	for id := range empty {
		_, err := s.client.Delete(ctx, registrationKey(id))
		note(etcdErr("delete registration record", err))
	}
	return firstErr
}
