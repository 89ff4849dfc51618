package bootserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// A standby whose active node goes away (a Vault restarted by another
// server's setup) answers a write with no data for a moment. Setup crashed
// on such an answer (nil pointer in newSecretID) and the servers waiting
// for it gave up minutes later; it must wait the failover out instead.
func TestVaultEmptyAnswersAreRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/auth/approle/role/" + BootServerRole + "/secret-id":
			w.Write([]byte(`{"data":{"secret_id":"s-1","secret_id_accessor":"a"}}`))
		case "/v1/auth/approle/login":
			w.Write([]byte(`{"auth":{"client_token":"t-1","lease_duration":3600}}`))
		case "/v1/" + MountEtcdClient + "/sign/" + PKIRole:
			w.Write([]byte(`{"data":{"certificate":"-----BEGIN CERTIFICATE-----"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	newClient := func() *vault.Client {
		calls.Store(0)
		cfg := vault.DefaultConfig()
		cfg.Address = srv.URL
		c, err := vault.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken("root")
		return c
	}
	ctx := context.Background()

	id, err := NewSecretID(ctx, newClient(), 1, 0)
	if err != nil || id != "s-1" {
		t.Errorf("NewSecretID = %q, %v", id, err)
	}
	c := newClient()
	if err := loginWith(ctx, c, AppRoleCreds{RoleID: BootServerRole, SecretID: "s-1"}); err != nil || c.Token() != "t-1" {
		t.Errorf("login: token %q, %v", c.Token(), err)
	}
	cert, err := signWithVault(ctx, newClient(), CertSpec{Kind: KindClientRoot, Mount: MountEtcdClient, CN: "root"}, []byte("csr"))
	if err != nil || len(cert) == 0 {
		t.Errorf("sign = %q, %v", cert, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls for the last request, want 3 (two empty answers, then the certificate)", n)
	}
}
