package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func commit(t *testing.T, st *Storage, g Guarded) error {
	t.Helper()
	_, err := etcdutil.Commit(st.Client.Txn(context.Background()).If(g.Cmps...).Then(g.Ops...))
	return err
}

func TestSnapshotAndGuardedWrites(t *testing.T) {
	ctx := context.Background()
	st := New(etcdtest.Client(t))
	for _, lrn := range []int{2, 0, 1} {
		if err := st.RegisterBootServer(ctx, lrn, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Junk that must not break readers.
	st.Client.Put(ctx, InfoBootServers+"x", "")
	st.Client.Put(ctx, StatusKey(7), "{not json")

	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.BootServers) != 3 || snap.BootServers[0] != 0 || snap.BootServers[2] != 2 {
		t.Errorf("BootServers = %v", snap.BootServers)
	}
	if len(snap.Malformed) != 2 {
		t.Errorf("Malformed = %v, want the two junk keys", snap.Malformed)
	}
	if snap.Request != nil || snap.Config.Env != neco.EnvNone {
		t.Errorf("empty store: %+v", snap)
	}

	req := &neco.UpdateRequest{ID: snap.Revision, Version: "2025.03.10-1", Servers: snap.BootServers, StartedAt: time.Now()}
	if err := commit(t, st, PutRequest(snap, req)); err != nil {
		t.Fatal(err)
	}
	// A second writer deciding on the same (now stale) snapshot loses.
	if err := commit(t, st, PutRequest(snap, req)); !errors.Is(err, etcdutil.ErrConflict) {
		t.Errorf("stale request write: err = %v, want ErrConflict", err)
	}

	snap, _ = st.Snapshot(ctx)
	if snap.Request == nil || snap.Request.Version != "2025.03.10-1" || len(snap.Statuses) != 0 {
		t.Fatalf("after PutRequest: %+v", snap)
	}
	if err := st.PutStatus(ctx, snap, 1, &neco.UpdateStatus{RequestID: req.ID, Step: 1, Cond: neco.CondRunning}); err != nil {
		t.Fatal(err)
	}
	// Same snapshot again: the own status changed, so this is stale.
	if err := st.PutStatus(ctx, snap, 1, &neco.UpdateStatus{RequestID: req.ID, Step: 2, Cond: neco.CondRunning}); !errors.Is(err, etcdutil.ErrConflict) {
		t.Errorf("stale status write: err = %v, want ErrConflict", err)
	}

	if _, err := st.Recover(ctx); !errors.Is(err, ErrNotStopped) {
		t.Errorf("recover of a running update: err = %v, want ErrNotStopped", err)
	}
	snap, _ = st.Snapshot(ctx)
	if err := commit(t, st, StopRequest(snap, "server 1 aborted")); err != nil {
		t.Fatal(err)
	}
	// A worker's status write on the stopped request's old snapshot fails.
	if err := st.PutStatus(ctx, snap, 1, &neco.UpdateStatus{RequestID: req.ID, Step: 2}); !errors.Is(err, etcdutil.ErrConflict) {
		t.Errorf("status write after stop: err = %v, want ErrConflict", err)
	}
	cleared, err := st.Recover(ctx)
	if err != nil || cleared.StopReason != "server 1 aborted" {
		t.Fatalf("Recover = %+v, %v", cleared, err)
	}
	snap, _ = st.Snapshot(ctx)
	if snap.Request != nil || len(snap.Statuses) != 0 {
		t.Errorf("after recover: request %+v statuses %v", snap.Request, snap.Statuses)
	}
	if _, err := st.Recover(ctx); !errors.Is(err, ErrNoRequest) {
		t.Errorf("recover with no request: err = %v", err)
	}
}

func TestConfig(t *testing.T) {
	ctx := context.Background()
	st := New(etcdtest.Client(t))
	if err := st.SetConfig(ctx, neco.KeyEnv, "prod"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetConfig(ctx, neco.KeyEnv, "production"); !errors.Is(err, neco.ErrBadConfig) {
		t.Errorf("bad value: err = %v", err)
	}
	if err := st.SetConfig(ctx, "colour", "red"); !errors.Is(err, neco.ErrBadConfig) {
		t.Errorf("bad key: err = %v", err)
	}
	snap, _ := st.Snapshot(ctx)
	if snap.Config.Env != neco.EnvProd || len(snap.ConfigValues) != 1 {
		t.Errorf("config = %+v; a rejected value was stored or the good one lost", snap.ConfigValues)
	}
	if err := st.UnsetConfig(ctx, neco.KeyEnv); err != nil {
		t.Fatal(err)
	}
	snap, _ = st.Snapshot(ctx)
	if snap.Config.Env != neco.EnvNone {
		t.Errorf("unset did not restore the default")
	}
}

func TestWaitChange(t *testing.T) {
	ctx := context.Background()
	st := New(etcdtest.Client(t))
	snap, _ := st.Snapshot(ctx)
	if st.WaitChange(ctx, snap.Revision, 100*time.Millisecond) {
		t.Error("change reported with nothing written")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		st.SetConfig(ctx, neco.KeyEnv, "dev")
	}()
	start := time.Now()
	if !st.WaitChange(ctx, snap.Revision, 10*time.Second) {
		t.Error("change not seen")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("woke by timeout, not by the watch")
	}
}
