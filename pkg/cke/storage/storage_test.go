package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func cluster(cps int) *cke.Cluster {
	c := &cke.Cluster{Name: "dc", ServiceSubnet: "10.68.0.0/16"}
	for i := range cps + 1 {
		c.Nodes = append(c.Nodes, &cke.Node{Address: fmt.Sprintf("10.0.0.%d", i+1), User: "cke", ControlPlane: i < cps})
	}
	return c
}

func TestClusterAndConstraints(t *testing.T) {
	ctx := context.Background()
	s := New(etcdtest.Client(t))
	if _, err := s.GetCluster(ctx); !errors.Is(err, cke.ErrNotFound) {
		t.Fatalf("get before set: %v", err)
	}
	if err := s.PutCluster(ctx, cluster(1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCluster(ctx)
	if err != nil || len(got.Nodes) != 2 || !got.Nodes[0].ControlPlane {
		t.Fatalf("get = %+v, %v", got, err)
	}

	// An invalid file or one breaking the constraints stores nothing.
	bad := cluster(1)
	bad.ServiceSubnet = "x"
	if err := s.PutCluster(ctx, bad); !errors.Is(err, cke.ErrInvalid) {
		t.Errorf("invalid cluster: %v", err)
	}
	if err := s.PutCluster(ctx, cluster(3)); !errors.Is(err, cke.ErrInvalid) {
		t.Errorf("3 control planes against control-plane-count 1: %v", err)
	}
	if got, _ := s.GetCluster(ctx); len(got.Nodes) != 2 {
		t.Errorf("a refused cluster was stored: %+v", got)
	}

	// Three control planes: first the constraint (the stored cluster.yml
	// now breaks it, which the engine reports), then the cluster.
	if err := s.PutConstraints(ctx, &cke.Constraints{ControlPlaneCount: 3, MinimumWorkersRate: 50}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCluster(ctx, cluster(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConstraints(ctx, &cke.Constraints{MinimumWorkersRate: 50}); !errors.Is(err, cke.ErrInvalid) {
		t.Errorf("invalid constraints: %v", err)
	}
	cfg, err := s.ReadConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster == nil || len(cfg.Cluster.Nodes) != 4 || cfg.Constraints.MinimumWorkersRate != 50 || cfg.Revision == 0 {
		t.Errorf("config = %+v", cfg)
	}
}

func campaign(t *testing.T, s *Storage, name string) *etcdutil.Leader {
	t.Helper()
	l, err := etcdutil.Campaign(context.Background(), s.Client(), LeaderElection, name, 5)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRecordsAreFencedAndBounded(t *testing.T) {
	ctx := context.Background()
	client := etcdtest.Client(t)
	s := New(client)
	l := campaign(t, s, "boot-0")

	r := &Record{Status: RecordRunning, Phase: decide.PhaseRivers, Op: decide.Op{Kind: decide.StartService, Service: cke.Rivers}, Start: time.Now()}
	if err := s.NewRecord(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 1 {
		t.Errorf("first ID = %d", r.ID)
	}
	r.Steps = append(r.Steps, Step{Name: "write files"})
	if err := s.UpdateRecord(ctx, l, r); err != nil {
		t.Fatal(err)
	}

	// A new leader cancels what the old one left running; the old one can
	// write nothing any more.
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := campaign(t, New(etcdtest.NewClient(t, t.Name()+"/")), "boot-1")
	if n, err := s.CancelRunning(ctx, l2, time.Now()); err != nil || n != 1 {
		t.Fatalf("cancel = %d, %v", n, err)
	}
	if err := s.UpdateRecord(ctx, l, r); !errors.Is(err, etcdutil.ErrNotLeader) {
		t.Errorf("deposed leader's write: %v", err)
	}
	recs, err := s.Records(ctx, 0)
	if err != nil || len(recs) != 1 || recs[0].Status != RecordCancelled || len(recs[0].Steps) != 1 {
		t.Fatalf("records = %+v, %v", recs, err)
	}

	// Only the last MaxRecords are kept, newest first.
	for range MaxRecords + 4 {
		if err := s.NewRecord(ctx, l2, &Record{Status: RecordCompleted}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err = s.Records(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != MaxRecords || recs[0].ID != MaxRecords+5 || recs[len(recs)-1].ID != 6 {
		t.Errorf("kept %d records, %d..%d", len(recs), recs[0].ID, recs[len(recs)-1].ID)
	}
	if last, _ := s.Records(ctx, 3); len(last) != 3 || last[0].ID != MaxRecords+5 {
		t.Errorf("last 3 = %v", last)
	}
}

func TestHostKeysAndManaged(t *testing.T) {
	ctx := context.Background()
	s := New(etcdtest.Client(t))
	if _, ok, err := s.Lookup("10.0.0.1"); ok || err != nil {
		t.Fatalf("lookup before pin: %v %v", ok, err)
	}
	if err := s.Pin("10.0.0.1", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin("10.0.0.1", []byte("k1")); err != nil {
		t.Errorf("pinning the same key again: %v", err)
	}
	if err := s.Pin("10.0.0.1", []byte("k2")); !errors.Is(err, cke.ErrConflict) {
		t.Errorf("pinning another key: %v", err)
	}
	if k, ok, _ := s.Lookup("10.0.0.1"); !ok || string(k) != "k1" {
		t.Errorf("lookup = %q %v", k, ok)
	}
	if ok, err := s.ForgetHostKey(ctx, "10.0.0.1"); !ok || err != nil {
		t.Errorf("forget = %v %v", ok, err)
	}

	l := campaign(t, s, "boot-0")
	if err := s.SetManaged(ctx, l, []string{"10.0.0.2", "10.0.0.1", "10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.ReadConfig(ctx)
	if err != nil || fmt.Sprint(cfg.Managed) != "[10.0.0.1 10.0.0.2]" || cfg.Cluster != nil {
		t.Errorf("config = %+v, %v", cfg, err)
	}
	if err := s.PutStatus(ctx, l, &Status{Leader: "boot-0", Phase: decide.PhaseCompleted}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetStatus(ctx); err != nil || st.Phase != decide.PhaseCompleted {
		t.Errorf("status = %+v, %v", st, err)
	}
	if err := s.PutVaultConfig(ctx, &VaultConfig{Endpoint: "https://v"}); !errors.Is(err, cke.ErrInvalid) {
		t.Errorf("incomplete vault config: %v", err)
	}
}
