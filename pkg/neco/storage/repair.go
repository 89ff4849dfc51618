package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// RepairRecord is the value of repair/<serial>: the last power cycle the
// repair loop (pkg/repair) made of a machine, or tried to, and how it ended.
type RepairRecord struct {
	Serial string `json:"serial"`
	// Episode is the machine's Status.Timestamp when it was cycled: the
	// failure the cycle was for.
	Episode time.Time `json:"episode"`
	// State is the machine's state when it was cycled.
	State    sabakan.MachineState `json:"state"`
	CycledAt time.Time            `json:"cycled_at"`
	// Result is "cycled" (done, outcome not known yet), "failed: <error>"
	// (the power action failed), "recovered" or "gave-up" (not healthy
	// within the configured wait).
	Result string `json:"result"`
	// HealthyAt is when the loop first saw the machine healthy again after
	// the cycle; zero until then. A record without it keeps the machine
	// from being cycled again.
	HealthyAt time.Time `json:"healthy_at,omitzero"`
}

// RepairRecords reads every repair record, by serial. A value that does not
// decode is an error rather than skipped: a missing record would let the
// loop cycle that machine again.
func (s *Storage) RepairRecords(ctx context.Context) (map[string]RepairRecord, error) {
	resp, err := s.Client.Get(ctx, RepairPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("storage: read repair records: %w", err)
	}
	out := make(map[string]RepairRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		serial := strings.TrimPrefix(string(kv.Key), RepairPrefix)
		var r RepairRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("storage: repair record %s: %w", kv.Key, err)
		}
		if r.Serial != serial {
			return nil, fmt.Errorf("storage: repair record %s names machine %q", kv.Key, r.Serial)
		}
		out[serial] = r
	}
	return out, nil
}

// PutRepairRecord writes r at repair/<r.Serial> while leaderKey, the key of
// the writer's election (etcdutil.Leader.Key), exists: a writer that lost
// its leadership gets etcdutil.ErrNotLeader and writes nothing.
func (s *Storage) PutRepairRecord(ctx context.Context, leaderKey string, r RepairRecord) error {
	if !sabakan.IsValidSerial(r.Serial) {
		return fmt.Errorf("storage: put repair record: invalid serial %q", r.Serial)
	}
	if leaderKey == "" {
		return fmt.Errorf("storage: put repair record of %s: no leader key: %w", r.Serial, etcdutil.ErrNotLeader)
	}
	resp, err := s.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(leaderKey), ">", 0)).
		Then(clientv3.OpPut(RepairKey(r.Serial), mustJSON(&r))).
		Commit()
	if err != nil {
		return fmt.Errorf("storage: put repair record of %s: %w", r.Serial, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("storage: put repair record of %s: %w", r.Serial, etcdutil.ErrNotLeader)
	}
	return nil
}
