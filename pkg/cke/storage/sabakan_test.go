package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestSabakanSettings(t *testing.T) {
	ctx := context.Background()
	s := New(etcdtest.Client(t))
	cfg, err := s.ReadConfig(ctx)
	if err != nil || cfg.Sabakan.Enabled() || cfg.Sabakan.Disabled {
		t.Fatalf("settings before any: %+v, %v", cfg.Sabakan, err)
	}
	for _, bad := range []string{"", "10.0.0.1:10080", "ftp://x", "http://", "http://x/?q=1"} {
		if err := s.PutSabakanURL(ctx, bad); !errors.Is(err, cke.ErrInvalid) {
			t.Errorf("URL %q: %v", bad, err)
		}
	}
	if err := s.PutSabakanURL(ctx, "http://10.69.0.3:10080"); err != nil {
		t.Fatal(err)
	}
	tmpl := cluster(1)
	for _, n := range tmpl.Nodes {
		n.Address = ""
	}
	if err := s.PutSabakanTemplate(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSabakanSettings(ctx)
	if err != nil || !got.Enabled() || got.URL != "http://10.69.0.3:10080" || len(got.Template.Nodes) != 2 {
		t.Fatalf("settings = %+v, %v", got, err)
	}
	if err := s.SetSabakanDisabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSabakanSettings(ctx); got.Enabled() || !got.Disabled {
		t.Errorf("disabled: %+v", got)
	}
	if err := s.SetSabakanDisabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSabakanSettings(ctx); !got.Enabled() {
		t.Errorf("enabled again: %+v", got)
	}
}

// TestPutGeneratedCluster: the generated cluster.yml is written only by
// the leader, and only over what the generator read.
func TestPutGeneratedCluster(t *testing.T) {
	ctx := context.Background()
	s := New(etcdtest.Client(t))
	l := campaign(t, s, "boot-0")
	cfg, err := s.ReadConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutGeneratedCluster(ctx, l, cfg, cluster(1)); err != nil {
		t.Fatal(err)
	}
	// cfg is stale now: a second write from it conflicts.
	if err := s.PutGeneratedCluster(ctx, l, cfg, cluster(1)); !errors.Is(err, cke.ErrConflict) {
		t.Errorf("stale cluster.yml: %v", err)
	}
	// An operator's constraint change meanwhile wins.
	cfg, _ = s.ReadConfig(ctx)
	if err := s.PutConstraints(ctx, &cke.Constraints{ControlPlaneCount: 1, MinimumWorkersRate: 50}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGeneratedCluster(ctx, l, cfg, cluster(1)); !errors.Is(err, cke.ErrConflict) {
		t.Errorf("constraints changed: %v", err)
	}
	// So does disabling the integration.
	cfg, _ = s.ReadConfig(ctx)
	if err := s.SetSabakanDisabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGeneratedCluster(ctx, l, cfg, cluster(1)); !errors.Is(err, cke.ErrConflict) {
		t.Errorf("disabled meanwhile: %v", err)
	}
	if err := s.SetSabakanDisabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	// A deposed leader writes nothing.
	cfg, _ = s.ReadConfig(ctx)
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGeneratedCluster(ctx, l, cfg, cluster(1)); err == nil {
		t.Error("a resigned leader wrote cluster.yml")
	}
	if after, _ := s.ReadConfig(ctx); after.ClusterRevision != cfg.ClusterRevision {
		t.Error("cluster.yml changed")
	}
}
