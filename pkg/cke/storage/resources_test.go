package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestPutResources(t *testing.T) {
	ctx := context.Background()
	s := New(etcdtest.Client(t))
	if err := s.PutResources(ctx, map[string][]byte{"Namespace/a": []byte("a"), "ConfigMap/a/b": []byte("b")}); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.ReadConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Resources) != 2 || string(cfg.Resources["ConfigMap/a/b"]) != "b" {
		t.Fatalf("resources = %q", cfg.Resources)
	}

	// Too many for one transaction, or a bad key: nothing is stored.
	many := map[string][]byte{}
	for i := range MaxResourcesPerPut + 1 {
		many[fmt.Sprintf("ConfigMap/x/%d", i)] = []byte("x")
	}
	for name, res := range map[string]map[string][]byte{
		"too many": many,
		"bad key":  {"ConfigMap/x/ok": []byte("x"), "": []byte("y")},
	} {
		if err := s.PutResources(ctx, res); !errors.Is(err, cke.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if cfg, _ := s.ReadConfig(ctx); len(cfg.Resources) != 2 {
		t.Errorf("a refused put stored something: %q", cfg.Resources)
	}
}
