package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// auditEntries returns the whole audit log.
func auditEntries(t *testing.T, s *Store) []sabakan.AuditEntry {
	t.Helper()
	var out []sabakan.AuditEntry
	if err := s.Logs(context.Background(), time.Time{}, time.Time{}, func(e *sabakan.AuditEntry) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendAudit(t *testing.T) {
	ctx := sabakan.WithActor(context.Background(), sabakan.Actor{User: "neco", IP: "10.0.0.1", Host: "boot-1"})
	s := newStore(t)
	if _, err := s.Register(ctx, specs("p", 2, 1)); err != nil {
		t.Fatal(err)
	}
	e, err := s.AppendAudit(ctx, "p00001", sabakan.AuditPower, "power-cycle", "hung: no heartbeat for 10m")
	if err != nil {
		t.Fatal(err)
	}
	want := sabakan.AuditEntry{User: "neco", IP: "10.0.0.1", Host: "boot-1", Category: "power", Instance: "p00001", Action: "power-cycle", Detail: "hung: no heartbeat for 10m"}
	got := *e
	got.Timestamp, got.Revision = time.Time{}, 0
	if got != want || e.Revision == 0 || time.Since(e.Timestamp) > time.Minute {
		t.Errorf("AppendAudit = %+v, want %+v with a revision and the current time", e, want)
	}
	entries := auditEntries(t, s)
	if last := entries[len(entries)-1]; last != *e {
		t.Errorf("the stored entry %+v differs from the one returned %+v", last, *e)
	}

	tests := []struct {
		name, serial string
		cat          sabakan.AuditCategory
		action       string
		detail       string
		want         error
	}{
		{"unknown machine", "nobody", sabakan.AuditPower, "power-on", "", sabakan.ErrNotFound},
		{"invalid serial", "a/b", sabakan.AuditPower, "power-on", "", sabakan.ErrBadRequest},
		{"category of sabakan's own", "p00001", sabakan.AuditMachines, "power-on", "", sabakan.ErrBadRequest},
		{"no category", "p00001", "", "power-on", "", sabakan.ErrBadRequest},
		{"uppercase action", "p00001", sabakan.AuditPower, "Power-on", "", sabakan.ErrBadRequest},
		{"action too long", "p00001", sabakan.AuditPower, strings.Repeat("a", 33), "", sabakan.ErrBadRequest},
		{"detail too long", "p00001", sabakan.AuditPower, "power-on", strings.Repeat("d", 1025), sabakan.ErrBadRequest},
		{"detail not UTF-8", "p00001", sabakan.AuditPower, "power-on", "\xff", sabakan.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(auditEntries(t, s))
			if _, err := s.AppendAudit(ctx, tt.serial, tt.cat, tt.action, tt.detail); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if after := len(auditEntries(t, s)); after != before {
				t.Errorf("the log grew from %d to %d entries", before, after)
			}
		})
	}
	if _, err := s.AppendAudit(ctx, "p00001", sabakan.AuditPower, strings.Repeat("a", 32), strings.Repeat("é", 512)); err != nil {
		t.Errorf("the longest action and detail: %v", err)
	}
}

// afterTxnKV runs after once the first transaction under it committed.
type afterTxnKV struct {
	clientv3.KV
	after func()
	once  sync.Once
}

func (h *afterTxnKV) Txn(ctx context.Context) clientv3.Txn { return &afterTxn{h.KV.Txn(ctx), h} }

type afterTxn struct {
	clientv3.Txn
	h *afterTxnKV
}

func (t *afterTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *afterTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *afterTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }

func (t *afterTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	t.h.once.Do(t.h.after)
	return resp, err
}

// TestAppendAuditMachineDeleted deletes the machine (from another server)
// between AppendAudit's read of it and its write: nothing is written and
// the answer is ErrNotFound.
func TestAppendAuditMachineDeleted(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	other := openStore(t, t.Name()+"/")
	if _, err := s.Register(ctx, specs("d", 2, 1)); err != nil {
		t.Fatal(err)
	}
	const serial = "d00001"
	// Tidied, the machine is read in one transaction; retired, it can be
	// deleted.
	for range 2 {
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []sabakan.MachineState{sabakan.StateHealthy, sabakan.StateRetiring, sabakan.StateRetired} {
		if _, err := other.SetState(ctx, serial, st); err != nil {
			t.Fatal(err)
		}
	}
	before := len(auditEntries(t, s))
	deleted := false
	s.client.KV = &afterTxnKV{KV: s.client.KV, after: func() {
		if err := other.DeleteMachine(ctx, serial); err != nil {
			t.Error(err)
		}
		deleted = true
	}}
	if _, err := s.AppendAudit(ctx, serial, sabakan.AuditPower, "power-off", ""); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("AppendAudit of a machine deleted meanwhile: %v, want ErrNotFound", err)
	}
	if !deleted {
		t.Fatal("the machine was not deleted during AppendAudit: the test proves nothing")
	}
	entries := auditEntries(t, s)
	if len(entries) != before+1 || entries[before].Action != "delete" {
		t.Errorf("entries after the deletion: %+v, want only the deletion's", entries[before:])
	}
}
