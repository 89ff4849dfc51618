package storage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/updater"
)

// TestFirstRequest checks that the setup leader's first request comes with
// the registration of every boot server. Before, each server registered
// only itself, and the leader's updater, started first, saw the request's
// servers differ from the registered ones (the leader alone), shrank the
// request to the leader, and its worker removed the other servers' etcd
// members (seen in the virtual data center).
func TestFirstRequest(t *testing.T) {
	ctx := context.Background()
	st := storage.New(etcdtest.Client(t))
	addrs := map[int]string{0: "10.69.0.3", 1: "10.69.0.195", 2: "10.69.1.131"}
	// The leader has registered itself; the others have not yet.
	if err := st.RegisterBootServer(ctx, 0, "10.69.0.3"); err != nil {
		t.Fatal(err)
	}
	if err := st.FirstRequest(ctx, addrs, "2025.01.02-3"); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.BootServers, []int{0, 1, 2}) {
		t.Errorf("registered %v, want [0 1 2]", snap.BootServers)
	}
	if values, err := st.BootServerValues(ctx); err != nil || values[1] != "10.69.0.195" || len(values) != 3 {
		t.Errorf("registrations %v, %v", values, err)
	}
	if snap.Request == nil || snap.Request.Version != "2025.01.02-3" || !slices.Equal(snap.Request.Servers, []int{0, 1, 2}) {
		t.Fatalf("request = %+v", snap.Request)
	}
	if snap.Latest != "2025.01.02-3" {
		t.Errorf("latest release = %q", snap.Latest)
	}
	// What the updater decides over this state: let the workers run.
	if a := updater.NextAction(snap, time.Now()); a.Kind == updater.Reconfigure {
		t.Errorf("the updater reconfigures the first request: %+v", a)
	}
	// Running it again (a resumed setup) changes nothing.
	if err := st.FirstRequest(ctx, addrs, "2025.01.02-3"); err != nil {
		t.Fatal(err)
	}
	again, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Request.ID != snap.Request.ID {
		t.Errorf("a second run replaced the request: %d → %d", snap.Request.ID, again.Request.ID)
	}
}
