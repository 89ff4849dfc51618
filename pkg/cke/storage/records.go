package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/etcdutil"
)

// RecordStatus is where an operation is.
type RecordStatus string

// Record statuses.
const (
	RecordRunning   RecordStatus = "running"
	RecordCompleted RecordStatus = "completed"
	RecordFailed    RecordStatus = "failed"
	// RecordCancelled: the leader that ran it died or stepped down; its
	// successor decides afresh.
	RecordCancelled RecordStatus = "cancelled"
)

// Record is the history of one operation (ckecli history).
type Record struct {
	ID     int64        `json:"id"`
	Status RecordStatus `json:"status"`
	Phase  decide.Phase `json:"phase"`
	Op     decide.Op    `json:"op"`
	Leader string       `json:"leader"`
	Start  time.Time    `json:"start"`
	End    time.Time    `json:"end,omitzero"`
	Steps  []Step       `json:"steps,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// Step is one step of an operation.
type Step struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	Error string    `json:"error,omitempty"`
}

// NewRecord stores r under a new ID (set in r) and drops the record that
// falls out of the last MaxRecords, as the leader.
func (s *Storage) NewRecord(ctx context.Context, l Leader, r *Record) error {
	return s.retry(ctx, func(ctx context.Context) error {
		resp, err := s.client.Get(ctx, KeyNextRecord)
		if err != nil {
			return fmt.Errorf("storage: get %s: %w", KeyNextRecord, err)
		}
		id, rev := int64(1), int64(0)
		if len(resp.Kvs) > 0 {
			if id, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return fmt.Errorf("storage: %s: %w", KeyNextRecord, err)
			}
			rev = resp.Kvs[0].ModRevision
		}
		r.ID = id
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		ops := []clientv3.Op{clientv3.OpPut(recordKey(id), string(data)), clientv3.OpPut(KeyNextRecord, itoa(id+1))}
		if old := id - MaxRecords; old > 0 {
			ops = append(ops, clientv3.OpDelete(recordKey(old)))
		}
		_, err = l.Do(ctx, []clientv3.Cmp{etcdutil.Unchanged(KeyNextRecord, rev)}, ops...)
		if err != nil && !errors.Is(err, etcdutil.ErrConflict) {
			err = fmt.Errorf("storage: new record: %w", err)
		}
		return err
	})
}

// UpdateRecord stores r (its steps, status) as the leader.
func (s *Storage) UpdateRecord(ctx context.Context, l Leader, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := l.Do(ctx, nil, clientv3.OpPut(recordKey(r.ID), string(data))); err != nil {
		return fmt.Errorf("storage: update record %d: %w", r.ID, err)
	}
	return nil
}

// Records returns the last n records (all kept when n <= 0), newest first.
func (s *Storage) Records(ctx context.Context, n int) ([]*Record, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if n > 0 {
		opts = append(opts, clientv3.WithLimit(int64(n)))
	}
	resp, err := s.client.Get(ctx, PrefixRecords, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage: get records: %w", err)
	}
	out := make([]*Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", kv.Key, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// CancelRunning marks every running record cancelled, as a new leader
// does before deciding: the operation of a leader that died is not
// resumed blindly but decided again from what the nodes run.
func (s *Storage) CancelRunning(ctx context.Context, l Leader, now time.Time) (int, error) {
	recs, err := s.Records(ctx, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		if r.Status != RecordRunning {
			continue
		}
		r.Status, r.End, r.Error = RecordCancelled, now, "cancelled by the next leader"
		if err := s.UpdateRecord(ctx, l, r); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
