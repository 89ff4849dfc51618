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
	now := s.opts.Now()
	e := sabakan.NewAuditEntry(ctx, now, cat, instance, action, detail)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(e)
	return clientv3.OpPut(auditKey(now), strings.TrimSuffix(buf.String(), "\n"))
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
