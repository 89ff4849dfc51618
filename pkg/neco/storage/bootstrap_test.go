package storage

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

// TestKeysAreStable pins the keys existing clusters hold: a key renamed
// here would be lost on every boot server that upgrades.
func TestKeysAreStable(t *testing.T) {
	for got, want := range map[string]string{
		BootServerKey(3):                "info/bootservers/3",
		InfoRelease:                     "info/neco-release",
		StatusCurrent:                   "status/current",
		StatusKey(3):                    "status/bootservers/3",
		ContentsKey(ContentsSabakan):    "contents/sabakan",
		ConfigKey("env"):                "config/env",
		ServiceKey(3, "vault"):          "install/3/services/vault",
		LeaderUpdater:                   "leader/updater",
		LeaderContents:                  "leader/contents",
		LockEtcd:                        "leader/etcd-restart",
		LeaderStateSetter:               "leader/state-setter",
		VaultUnsealKey:                  "vault-unseal-key",
		SetupVaultRootToken:             "setup/vault-root-token",
		FinishKey(3):                    "finish/3",
		RepairKey("abc-1"):              "repair/abc-1",
		DefaultPrefix + VaultUnsealKey:  "/neco/vault-unseal-key",
		DefaultPrefix + InfoBootServers: "/neco/info/bootservers/",
		DefaultPrefix + SetupFinished:   "/neco/finish/",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
}

func TestBootstrapKeys(t *testing.T) {
	ctx := context.Background()
	st := New(etcdtest.Client(t))

	if _, err := st.UnsealKey(ctx); !errors.Is(err, ErrNotInEtcd) || err.Error() != "/neco/vault-unseal-key is not in etcd" {
		t.Errorf("absent unseal key: %v", err)
	}
	if err := st.PutVaultSecrets(ctx, "key", "token"); err != nil {
		t.Fatal(err)
	}
	if k, err := st.UnsealKey(ctx); err != nil || k != "key" {
		t.Errorf("UnsealKey = %q, %v", k, err)
	}
	if tok, err := st.SetupRootToken(ctx); err != nil || tok != "token" {
		t.Errorf("SetupRootToken = %q, %v", tok, err)
	}
	if err := st.DeleteSetupRootToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetupRootToken(ctx); !errors.Is(err, ErrNotInEtcd) {
		t.Errorf("deleted root token: %v", err)
	}

	for lrn, stage := range map[int]int{0: 6, 1: 3, 12: 4} {
		if err := st.FinishStage(ctx, lrn, stage); err != nil {
			t.Fatal(err)
		}
	}
	st.Client.Put(ctx, SetupFinished+"x", "1") // junk is left out
	got, err := st.FinishedStages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]int{0: 6, 1: 3, 12: 4}; !maps.Equal(got, want) {
		t.Errorf("FinishedStages = %v, want %v", got, want)
	}
	if err := st.Ping(ctx); err != nil {
		t.Error(err)
	}
}
