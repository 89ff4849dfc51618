package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestRepairRecordsAreFenced(t *testing.T) {
	ctx := context.Background()
	client := etcdtest.Client(t)
	st := New(client)
	leader, err := etcdutil.Campaign(ctx, client, LeaderStateSetter, "boot-0", 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Resign(context.Background()) })

	at := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	rec := RepairRecord{Serial: "s1", Episode: at, State: sabakan.StateUnreachable, CycledAt: at.Add(10 * time.Minute), Result: "cycled"}
	if err := st.PutRepairRecord(ctx, leader.Key(), rec); err != nil {
		t.Fatal(err)
	}
	got, err := st.RepairRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["s1"].Episode.Equal(at) || got["s1"].Result != "cycled" || !got["s1"].HealthyAt.IsZero() {
		t.Fatalf("RepairRecords = %+v", got)
	}

	// Leadership gone: the write fails and changes nothing.
	if _, err := client.Delete(ctx, leader.Key()); err != nil {
		t.Fatal(err)
	}
	rec.Result = "recovered"
	if err := st.PutRepairRecord(ctx, leader.Key(), rec); !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("fenced put without leadership: err = %v, want ErrNotLeader", err)
	}
	if err := st.PutRepairRecord(ctx, "", rec); !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("put without a leader key: err = %v, want ErrNotLeader", err)
	}
	got, _ = st.RepairRecords(ctx)
	if got["s1"].Result != "cycled" {
		t.Errorf("record after the failed put = %+v", got["s1"])
	}

	// A record that does not decode stops the reader: skipping it could
	// cycle that machine twice.
	client.Put(ctx, RepairKey("s2"), "{not json")
	if _, err := st.RepairRecords(ctx); err == nil {
		t.Error("RepairRecords with a malformed value: no error")
	}
}
