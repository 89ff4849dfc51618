package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco/storage"
)

func TestBMCCredentials(t *testing.T) {
	ctx := context.Background()
	s := storage.New(etcdtest.Client(t))
	if _, err := s.GetBMCCredentials(ctx); !errors.Is(err, storage.ErrNoBMCCredentials) {
		t.Fatalf("nothing stored: got %v, want ErrNoBMCCredentials", err)
	}
	if err := s.SetBMCCredentials(ctx, bmc.Credentials{Username: "admin"}); err == nil {
		t.Fatal("credentials without a password were stored")
	}
	if _, err := s.GetBMCCredentials(ctx); !errors.Is(err, storage.ErrNoBMCCredentials) {
		t.Fatalf("a refused set wrote something: %v", err)
	}
	want := bmc.Credentials{Username: "admin", Password: "s3cret ü"}
	if err := s.SetBMCCredentials(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetBMCCredentials(ctx)
	if err != nil || got != want {
		t.Fatalf("got %v, %v; want the stored credentials", got, err)
	}
	if _, err := s.Client.Put(ctx, storage.BMCCredentials, "{"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBMCCredentials(ctx); err == nil || errors.Is(err, storage.ErrNoBMCCredentials) {
		t.Fatalf("a malformed value: got %v, want a decoding error", err)
	}
}
