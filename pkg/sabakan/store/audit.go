package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// AuditRetention is how long audit entries are kept.
const AuditRetention = 60 * 24 * time.Hour

// AuditOp returns the operation that records a mutation made in ctx (whose
// actor, see sabakan.WithActor, is recorded) at the store's current time.
// Put it into the transaction that makes the mutation, so that the change and
// its audit entry commit together or not at all. The entry's revision is the
// transaction's, filled in when the log is read.
func (s *Store) AuditOp(ctx context.Context, cat sabakan.AuditCategory, instance, action, detail string) clientv3.Op {
	_, op := s.auditOp(ctx, cat, instance, action, detail)
	return op
}

// auditOp is AuditOp that also returns the entry it writes.
func (s *Store) auditOp(ctx context.Context, cat sabakan.AuditCategory, instance, action, detail string) (sabakan.AuditEntry, clientv3.Op) {
	now := s.opts.Now()
	e := sabakan.NewAuditEntry(ctx, now, cat, instance, action, detail)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(e)
	return e, clientv3.OpPut(auditKey(now), strings.TrimSuffix(buf.String(), "\n"))
}

// AppendAudit records an action that a program took on a machine outside
// sabakan (a power cycle, say): an entry of category cat, which must be
// appendable (sabakan.AuditCategory.Appendable), for the machine with the
// serial, with the actor of ctx and the store's time. It is written in one
// transaction guarded by the machine's revision, so nothing is written for
// a machine that is unknown (sabakan.ErrNotFound) or deleted meanwhile. It
// returns the entry as stored, with its revision.
func (s *Store) AppendAudit(ctx context.Context, serial string, cat sabakan.AuditCategory, action, detail string) (*sabakan.AuditEntry, error) {
	switch {
	case !cat.Appendable():
		return nil, fmt.Errorf("%w: audit category %q cannot be appended to (appendable: %v)", sabakan.ErrBadRequest, cat, sabakan.AppendableCategories())
	case !sabakan.IsValidAuditAction(action):
		return nil, fmt.Errorf("%w: invalid audit action %q", sabakan.ErrBadRequest, action)
	case !sabakan.IsValidAuditDetail(detail):
		return nil, fmt.Errorf("%w: invalid audit detail: want at most %d bytes of UTF-8", sabakan.ErrBadRequest, sabakan.MaxAuditDetailBytes)
	}
	var ch *change
	_, err := s.mutate(ctx, serial, false, func(*current) (*change, error) {
		ch = &change{machine: keep, category: cat, action: action, detail: detail}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return ch.logged, nil
}

// auditPage is how many entries one request of Logs reads.
const auditPage = 500

// Logs calls fn with every audit entry of the UTC days since..until
// (until excluded; zero values mean unbounded), oldest first, as of one
// revision.
func (s *Store) Logs(ctx context.Context, since, until time.Time, fn func(*sabakan.AuditEntry) error) error {
	from := KeyAudit
	if !since.IsZero() {
		from = KeyAudit + auditDay(since)
	}
	end := clientv3.GetPrefixRangeEnd(KeyAudit)
	if !until.IsZero() {
		end = KeyAudit + auditDay(until)
	}
	if from >= end {
		return nil
	}
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(auditPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, from, opts...)
		if err != nil {
			return etcdErr("read audit log", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var e sabakan.AuditEntry
			if err := json.Unmarshal(kv.Value, &e); err != nil {
				return fmt.Errorf("audit entry %s: %w", kv.Key, err)
			}
			e.Revision = kv.CreateRevision
			if err := fn(&e); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// expireAuditOp deletes the entries of days before now - AuditRetention.
func expireAuditOp(now time.Time) clientv3.Op {
	return clientv3.OpDelete(KeyAudit, clientv3.WithRange(KeyAudit+auditDay(now.Add(-AuditRetention))))
}
