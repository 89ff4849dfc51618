package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
)

// Errors of the operator commands.
var (
	ErrNotStopped = errors.New("storage: the update is not stopped; nothing to recover")
	ErrNoRequest  = errors.New("storage: no update request")
)

// Storage reads and writes neco's keys through a client scoped to /neco/.
type Storage struct {
	Client *clientv3.Client
}

// New returns a Storage on client.
func New(client *clientv3.Client) *Storage { return &Storage{Client: client} }

// Snapshot is the CD state read at one etcd revision, with the revisions
// that writes based on it compare against.
type Snapshot struct {
	Revision int64

	Latest    string // info/neco-release, "" when absent
	LatestRev int64

	Request    *neco.UpdateRequest // nil when absent
	RequestRev int64

	// Statuses are every stored worker status, whatever request they
	// belong to; see neco.StatusesFor.
	Statuses   map[int]*neco.UpdateStatus
	StatusRevs map[int]int64

	BootServers []int // ascending

	Contents    map[string]*neco.ContentsRecord
	ContentsRev map[string]int64

	// ConfigValues are the stored config/ values; Config is them parsed.
	ConfigValues map[string]string
	Config       neco.Config

	// Malformed lists keys whose values did not decode; they are left out.
	Malformed []string
}

// Snapshot reads the CD state in one transaction.
func (s *Storage) Snapshot(ctx context.Context) (*Snapshot, error) {
	resp, err := s.Client.Txn(ctx).Then(
		clientv3.OpGet(InfoBootServers, clientv3.WithPrefix()),
		clientv3.OpGet(InfoRelease),
		clientv3.OpGet(StatusCurrent),
		clientv3.OpGet(StatusBootServers, clientv3.WithPrefix()),
		clientv3.OpGet(Contents, clientv3.WithPrefix()),
		clientv3.OpGet(Config, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("storage: read snapshot: %w", err)
	}
	snap := &Snapshot{
		Revision:     resp.Header.Revision,
		Statuses:     map[int]*neco.UpdateStatus{},
		StatusRevs:   map[int]int64{},
		Contents:     map[string]*neco.ContentsRecord{},
		ContentsRev:  map[string]int64{},
		ConfigValues: map[string]string{},
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if lrn, ok := lrnOf(string(kv.Key), InfoBootServers); ok {
			snap.BootServers = append(snap.BootServers, lrn)
		} else {
			snap.Malformed = append(snap.Malformed, string(kv.Key))
		}
	}
	slices.Sort(snap.BootServers)
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		snap.Latest, snap.LatestRev = string(kv.Value), kv.ModRevision
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		snap.RequestRev = kv.ModRevision
		req := &neco.UpdateRequest{}
		if err := json.Unmarshal(kv.Value, req); err != nil {
			snap.Malformed = append(snap.Malformed, string(kv.Key))
			continue
		}
		snap.Request = req
	}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		lrn, ok := lrnOf(string(kv.Key), StatusBootServers)
		st := &neco.UpdateStatus{}
		if !ok || json.Unmarshal(kv.Value, st) != nil {
			snap.Malformed = append(snap.Malformed, string(kv.Key))
			continue
		}
		snap.Statuses[lrn], snap.StatusRevs[lrn] = st, kv.ModRevision
	}
	for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), Contents)
		rec := &neco.ContentsRecord{}
		if json.Unmarshal(kv.Value, rec) != nil {
			snap.Malformed = append(snap.Malformed, string(kv.Key))
			continue
		}
		snap.Contents[name], snap.ContentsRev[name] = rec, kv.ModRevision
	}
	for _, kv := range resp.Responses[5].GetResponseRange().Kvs {
		snap.ConfigValues[strings.TrimPrefix(string(kv.Key), Config)] = string(kv.Value)
	}
	snap.Config = neco.ParseConfig(snap.ConfigValues)
	return snap, nil
}

// CurrentStatuses are the statuses of the snapshot's request's servers that
// belong to that request.
func (s *Snapshot) CurrentStatuses() map[int]*neco.UpdateStatus {
	return neco.StatusesFor(s.Request, s.Statuses)
}

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// Guarded is a write decided on a snapshot: it applies only while Cmps hold.
type Guarded struct {
	Cmps []clientv3.Cmp
	Ops  []clientv3.Op
}

// PutRequest writes req as the new request, replacing the one in snap, and
// deletes every worker status (they belong to older requests).
func PutRequest(snap *Snapshot, req *neco.UpdateRequest) Guarded {
	return Guarded{
		Cmps: []clientv3.Cmp{etcdutil.Unchanged(StatusCurrent, snap.RequestRev)},
		Ops: []clientv3.Op{
			clientv3.OpPut(StatusCurrent, mustJSON(req)),
			clientv3.OpDelete(StatusBootServers, clientv3.WithPrefix()),
		},
	}
}

// StopRequest sets Stop on the snapshot's request.
func StopRequest(snap *Snapshot, reason string) Guarded {
	req := *snap.Request
	req.Stop, req.StopReason = true, reason
	return Guarded{
		Cmps: []clientv3.Cmp{etcdutil.Unchanged(StatusCurrent, snap.RequestRev)},
		Ops:  []clientv3.Op{clientv3.OpPut(StatusCurrent, mustJSON(&req))},
	}
}

// SetLatest records version as the latest release.
func SetLatest(snap *Snapshot, version string) Guarded {
	return Guarded{
		Cmps: []clientv3.Cmp{etcdutil.Unchanged(InfoRelease, snap.LatestRev)},
		Ops:  []clientv3.Op{clientv3.OpPut(InfoRelease, version)},
	}
}

// PutContentsRecord records an upload as done for version.
func PutContentsRecord(snap *Snapshot, name, version string) Guarded {
	return Guarded{
		Cmps: []clientv3.Cmp{etcdutil.Unchanged(ContentsKey(name), snap.ContentsRev[name])},
		Ops:  []clientv3.Op{clientv3.OpPut(ContentsKey(name), mustJSON(&neco.ContentsRecord{Version: version, Success: true}))},
	}
}

// PutStatus writes the status of lrn for the snapshot's request; it fails
// with etcdutil.ErrConflict when the request or this status changed since
// the snapshot.
func (s *Storage) PutStatus(ctx context.Context, snap *Snapshot, lrn int, st *neco.UpdateStatus) error {
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = time.Now().UTC()
	}
	_, err := etcdutil.Commit(s.Client.Txn(ctx).If(
		etcdutil.Unchanged(StatusCurrent, snap.RequestRev),
		etcdutil.Unchanged(StatusKey(lrn), snap.StatusRevs[lrn]),
	).Then(clientv3.OpPut(StatusKey(lrn), mustJSON(st))))
	if err != nil {
		return fmt.Errorf("storage: put status of %d: %w", lrn, err)
	}
	return nil
}

// Recover clears a stopped update: it deletes the request and every worker
// status, so that the updater issues a fresh request for the latest release.
// It returns the request it cleared.
func (s *Storage) Recover(ctx context.Context) (*neco.UpdateRequest, error) {
	var cleared *neco.UpdateRequest
	err := etcdutil.Retry(ctx, func(ctx context.Context) error {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		if snap.Request == nil {
			return ErrNoRequest
		}
		if !snap.Request.Stop {
			return ErrNotStopped
		}
		_, err = etcdutil.Commit(s.Client.Txn(ctx).If(etcdutil.Unchanged(StatusCurrent, snap.RequestRev)).Then(
			clientv3.OpDelete(StatusCurrent),
			clientv3.OpDelete(StatusBootServers, clientv3.WithPrefix()),
		))
		cleared = snap.Request
		return err
	})
	return cleared, err
}

// SetConfig validates and stores a config value.
func (s *Storage) SetConfig(ctx context.Context, name, value string) error {
	if err := neco.ValidateConfig(name, value); err != nil {
		return err
	}
	if _, err := s.Client.Put(ctx, ConfigKey(name), value); err != nil {
		return fmt.Errorf("storage: set config %s: %w", name, err)
	}
	return nil
}

// UnsetConfig removes a stored value so that the default applies.
func (s *Storage) UnsetConfig(ctx context.Context, name string) error {
	if _, ok := neco.LookupConfigKey(name); !ok {
		return fmt.Errorf("%w: unknown key %q", neco.ErrBadConfig, name)
	}
	if _, err := s.Client.Delete(ctx, ConfigKey(name)); err != nil {
		return fmt.Errorf("storage: unset config %s: %w", name, err)
	}
	return nil
}

// RegisterBootServer adds lrn to the boot server set; value is free-form
// (bootstrap stores the server's address).
func (s *Storage) RegisterBootServer(ctx context.Context, lrn int, value string) error {
	_, err := s.Client.Put(ctx, BootServerKey(lrn), value)
	return err
}

// UnregisterBootServer removes lrn from the boot server set.
func (s *Storage) UnregisterBootServer(ctx context.Context, lrn int) error {
	_, err := s.Client.Delete(ctx, BootServerKey(lrn))
	return err
}

// WaitChange blocks until something under /neco/ changes after rev, timeout
// passes, or ctx ends. It returns whether a change was seen. A compacted
// rev counts as a change: the caller re-reads anyway.
func (s *Storage) WaitChange(ctx context.Context, rev int64, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wch := s.Client.Watch(clientv3.WithRequireLeader(ctx), "", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if resp.Err() != nil || len(resp.Events) > 0 || resp.Canceled {
			return true
		}
	}
	return false
}

// ServiceVersion is the version unit on lrn was last restarted for, or "".
func (s *Storage) ServiceVersion(ctx context.Context, lrn int, unit string) (string, error) {
	resp, err := s.Client.Get(ctx, ServiceKey(lrn, unit))
	if err != nil {
		return "", fmt.Errorf("storage: get restart record of %s: %w", unit, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// SetServiceVersion records that unit on lrn was restarted for version.
func (s *Storage) SetServiceVersion(ctx context.Context, lrn int, unit, version string) error {
	if _, err := s.Client.Put(ctx, ServiceKey(lrn, unit), version); err != nil {
		return fmt.Errorf("storage: put restart record of %s: %w", unit, err)
	}
	return nil
}
