package store

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
)

// Abandoned registrations.
//
// A registration whose server died (or gave up without rolling back) leaves
// machines naming a record that vanished with its lease, registration-ttl
// after the server stopped keeping it alive. Such machines can never become
// visible — a record id is never written again — but they hold their serials
// and rack indices until deleted. Any server deletes them, not only the
// elected janitor: the election's session of a killed janitor outlives the
// registration's lease (metrics-leader-election-ttl, 60 s, against 10 s), and
// a restarted lone server would otherwise refuse the same batch as "already
// registered" for that long. Every server looks for them every sweepInterval
// in its index (no etcd request unless there are some), and a registration
// removes them first when there are some, so that the batch a killed server
// was writing can be posted again as soon as its lease has expired.

// abandoned lists the machines whose registration record is gone.
func (x *index) abandoned() []*entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []*entry
	for _, e := range x.machines {
		if e.reg != "" && x.regs[e.reg] == nil {
			out = append(out, e)
		}
	}
	return out
}

// removeAbandoned deletes the machines and rack indices of abandoned
// registrations, tidyChunk machines per transaction. Each transaction
// compares every machine's ModRevision with the index's and the absence of
// every record they name, so any number of servers may run it at once, and
// concurrently with the API: a machine changed or a record present meanwhile
// makes the transaction fail, and nothing is deleted. entries may come from a
// stale index: a record, once gone, never returns.
func (s *Store) removeAbandoned(ctx context.Context, entries []*entry) error {
	var firstErr error
	for start := 0; start < len(entries); start += tidyChunk {
		chunk := entries[start:min(start+tidyChunk, len(entries))]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		regs := map[string]bool{}
		for _, e := range chunk {
			cmps = append(cmps, etcdutil.Unchanged(machineKey(e.m.Spec.Serial), e.modRev))
			ops = append(ops, clientv3.OpDelete(machineKey(e.m.Spec.Serial)), clientv3.OpDelete(slotKey(e.m.Spec.Rack, e.m.Spec.IndexInRack)))
			regs[e.reg] = true
		}
		for id := range regs {
			cmps = append(cmps, etcdutil.Absent(registrationKey(id)))
		}
		resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			if firstErr == nil {
				firstErr = etcdErr("delete machines of an abandoned registration", err)
			}
			continue
		}
		if resp.Succeeded {
			slog.Info("store: removed machines of an abandoned registration", "count", len(chunk))
		}
	}
	return firstErr
}

// removeAbandonedLoop removes abandoned registrations every sweepInterval
// until ctx ends. Every server runs it, leader or not.
func (s *Store) removeAbandonedLoop(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		if found := s.idx.abandoned(); len(found) > 0 {
			if err := s.removeAbandoned(ctx, found); err != nil && ctx.Err() == nil {
				slog.Warn("store: removing an abandoned registration failed; retrying", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
