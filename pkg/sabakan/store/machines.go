package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Query returns the machines matching q (nil: all), sorted by serial, with
// Status.Duration computed now. The machines share label maps and address
// slices with the index: callers must treat them as read-only.
func (s *Store) Query(ctx context.Context, q *sabakan.Query) ([]sabakan.Machine, error) {
	if q == nil {
		q = &sabakan.Query{}
	}
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	entries := s.idx.query(q)
	now := s.opts.Now()
	out := make([]sabakan.Machine, len(entries))
	for i, e := range entries {
		out[i] = e.m.WithDuration(now)
	}
	return out, nil
}

// Machine returns the machine with the serial, or an error wrapping
// sabakan.ErrNotFound.
func (s *Store) Machine(ctx context.Context, serial string) (*sabakan.Machine, error) {
	ms, err := s.Query(ctx, &sabakan.Query{Has: sabakan.Filter{Serials: []string{serial}}})
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, notFound(serial)
	}
	return &ms[0], nil
}

func notFound(serial string) error {
	return fmt.Errorf("%w: machine %s is not registered", sabakan.ErrNotFound, serial)
}

// What a change does to the machine record itself.
const (
	rewrite = iota // store the changed machine
	keep           // leave it, only guard on its revision
	remove         // delete it
)

// change is what a mutation decided: its audit entry and what to write.
type change struct {
	machine  int
	category sabakan.AuditCategory
	action   string
	detail   string
	cmps     []clientv3.Cmp
	ops      []clientv3.Op
	// logged is filled in by mutate: the audit entry it committed, with
	// its revision.
	logged *sabakan.AuditEntry
}

// current is a machine as read for a mutation.
type current struct {
	m      *sabakan.Machine
	modRev int64
	crypts []string // paths of its disk encryption keys, when asked for
}

// mutate reads a machine (and, with crypts, the paths of its disk keys),
// lets decide change it, and commits the result with its audit entry in one
// transaction guarded by the machine's revision, retrying when the machine
// changed meanwhile. decide may run several times; a nil change is a no-op.
func (s *Store) mutate(ctx context.Context, serial string, crypts bool, decide func(cur *current) (*change, error)) (*sabakan.Machine, error) {
	if !sabakan.IsValidSerial(serial) {
		return nil, fmt.Errorf("%w: invalid serial %q", sabakan.ErrBadRequest, serial)
	}
	var result *sabakan.Machine
	err := etcdutil.Retry(ctx, func(ctx context.Context) error {
		cur, err := s.read(ctx, serial, crypts)
		if err != nil {
			return err
		}
		ch, err := decide(cur)
		if err != nil || ch == nil {
			result = cur.m
			return err
		}
		cmps := append([]clientv3.Cmp{etcdutil.Unchanged(machineKey(serial), cur.modRev)}, ch.cmps...)
		entry, auditOp := s.auditOp(ctx, ch.category, serial, ch.action, ch.detail)
		ops := append([]clientv3.Op{auditOp}, ch.ops...)
		switch ch.machine {
		case rewrite:
			data, err := json.Marshal(record{Machine: *cur.m})
			if err != nil {
				return err
			}
			if len(data) > maxRecordBytes {
				return fmt.Errorf("%w: machine %s would grow to %d bytes of JSON, more than %d", sabakan.ErrBadRequest, serial, len(data), maxRecordBytes)
			}
			ops = append(ops, clientv3.OpPut(machineKey(serial), string(data)))
		case remove:
			ops = append(ops, clientv3.OpDelete(machineKey(serial)))
		}
		resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return etcdErr("update machine "+serial, err)
		}
		if !resp.Succeeded {
			return etcdutil.ErrConflict
		}
		entry.Revision = resp.Header.Revision
		ch.logged = &entry
		result = cur.m
		return nil
	})
	if errors.Is(err, etcdutil.ErrConflict) {
		return nil, fmt.Errorf("%w: machine %s: too many concurrent updates, try again", sabakan.ErrUnavailable, serial)
	}
	return result, err
}

// read returns a visible machine as stored in etcd.
func (s *Store) read(ctx context.Context, serial string, crypts bool) (*current, error) {
	ops := []clientv3.Op{clientv3.OpGet(machineKey(serial))}
	if crypts {
		ops = append(ops, clientv3.OpGet(cryptPrefix(serial), clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	}
	resp, err := s.client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, etcdErr("read machine "+serial, err)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, notFound(serial)
	}
	r, err := decodeRecord(kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("machine %s: malformed record: %w", serial, err)
	}
	if r.Registration != "" {
		// Written by a registration: visible only once it committed. The
		// record is read only while the machine still names it: the janitor
		// may meanwhile have rewritten the machine without the id and deleted
		// the record, and then the machine is re-read (Retry).
		reg, err := s.client.Txn(ctx).If(etcdutil.Unchanged(machineKey(serial), kvs[0].ModRevision)).
			Then(clientv3.OpGet(registrationKey(r.Registration))).Commit()
		if err != nil {
			return nil, etcdErr("read registration", err)
		}
		if !reg.Succeeded {
			return nil, etcdutil.ErrConflict
		}
		rkvs := reg.Responses[0].GetResponseRange().Kvs
		var st registration
		if len(rkvs) == 0 || json.Unmarshal(rkvs[0].Value, &st) != nil || st.State != regCommitted {
			return nil, notFound(serial)
		}
	}
	cur := &current{m: &r.Machine, modRev: kvs[0].ModRevision}
	if crypts {
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			cur.crypts = append(cur.crypts, strings.TrimPrefix(string(kv.Key), cryptPrefix(serial)))
		}
	}
	return cur, nil
}

// noCrypts holds while the machine has no disk encryption key.
func noCrypts(serial string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(cryptPrefix(serial)), "=", 0).WithPrefix()
}

// SetState moves a machine to state, enforcing the life-cycle table, and
// returns the machine. Moving to retired requires that the machine has no
// disk encryption keys (checked in the same transaction).
func (s *Store) SetState(ctx context.Context, serial string, state sabakan.MachineState) (*sabakan.Machine, error) {
	if _, err := sabakan.ParseState(string(state)); err != nil {
		return nil, err
	}
	retire := state == sabakan.StateRetired
	return s.mutate(ctx, serial, retire, func(cur *current) (*change, error) {
		from := cur.m.Status.State
		changed, err := cur.m.SetState(state, s.opts.Now())
		if err != nil || !changed {
			return nil, err
		}
		ch := &change{category: sabakan.AuditMachines, action: "set-state", detail: fmt.Sprintf("%s -> %s", from, state)}
		if retire {
			if n := len(cur.crypts); n > 0 {
				return nil, fmt.Errorf("%w: machine %s still has %d disk encryption key(s): delete them (DELETE /api/v1/crypts/%s) before retiring it", sabakan.ErrBadRequest, serial, n, serial)
			}
			ch.cmps = append(ch.cmps, noCrypts(serial))
		}
		return ch, nil
	})
}

// SetLabel adds or replaces a label of a machine.
func (s *Store) SetLabel(ctx context.Context, serial, name, value string) error {
	if !sabakan.IsValidLabelName(name) {
		return fmt.Errorf("%w: invalid label name %q", sabakan.ErrBadRequest, name)
	}
	if !sabakan.IsValidLabelValue(value) {
		return fmt.Errorf("%w: invalid value %q of label %s", sabakan.ErrBadRequest, value, name)
	}
	_, err := s.mutate(ctx, serial, false, func(cur *current) (*change, error) {
		if v, ok := cur.m.Spec.Labels[name]; ok && v == value {
			return nil, nil
		}
		labels := maps.Clone(cur.m.Spec.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[name] = value
		if len(labels) > sabakan.MaxLabels {
			return nil, fmt.Errorf("%w: machine %s would have more than %d labels", sabakan.ErrBadRequest, serial, sabakan.MaxLabels)
		}
		cur.m.Spec.Labels = labels
		return &change{category: sabakan.AuditMachines, action: "put-label", detail: name + "/" + value}, nil
	})
	return err
}

// RemoveLabel removes a label of a machine; a missing label is
// sabakan.ErrNotFound.
func (s *Store) RemoveLabel(ctx context.Context, serial, name string) error {
	if !sabakan.IsValidLabelName(name) {
		return fmt.Errorf("%w: invalid label name %q", sabakan.ErrBadRequest, name)
	}
	_, err := s.mutate(ctx, serial, false, func(cur *current) (*change, error) {
		if _, ok := cur.m.Spec.Labels[name]; !ok {
			return nil, fmt.Errorf("%w: machine %s has no label %s", sabakan.ErrNotFound, serial, name)
		}
		labels := maps.Clone(cur.m.Spec.Labels)
		delete(labels, name)
		cur.m.Spec.Labels = labels
		return &change{category: sabakan.AuditMachines, action: "delete-label", detail: name}, nil
	})
	return err
}

// SetRetireDate sets the date a machine is planned to retire.
func (s *Store) SetRetireDate(ctx context.Context, serial string, date time.Time) error {
	date = date.UTC()
	_, err := s.mutate(ctx, serial, false, func(cur *current) (*change, error) {
		if cur.m.Spec.RetireDate.Equal(date) {
			return nil, nil
		}
		cur.m.Spec.RetireDate = date
		return &change{category: sabakan.AuditMachines, action: "set-retire-date", detail: date.String()}, nil
	})
	return err
}

// DeleteMachine removes a retired machine and frees its index in rack.
func (s *Store) DeleteMachine(ctx context.Context, serial string) error {
	_, err := s.mutate(ctx, serial, false, func(cur *current) (*change, error) {
		if st := cur.m.Status.State; st != sabakan.StateRetired {
			return nil, fmt.Errorf("%w: machine %s is %s: only retired machines can be deleted", sabakan.ErrConflict, serial, st)
		}
		return &change{
			machine: remove, category: sabakan.AuditMachines, action: "delete",
			cmps: []clientv3.Cmp{noCrypts(serial)},
			ops:  []clientv3.Op{clientv3.OpDelete(slotKey(cur.m.Spec.Rack, cur.m.Spec.IndexInRack))},
		}, nil
	})
	return err
}
