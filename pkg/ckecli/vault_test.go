package ckecli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/testutil/vaulttest"
)

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM in %q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkTTL fails unless c is valid for about ttl from now (Vault backdates
// NotBefore; NotAfter is what matters).
func checkLifetime(t *testing.T, c *x509.Certificate, ttl time.Duration) {
	t.Helper()
	if d := time.Until(c.NotAfter) - ttl; d > time.Minute || d < -time.Minute {
		t.Errorf("%s: not after %s, want about %s from now", c.Subject, c.NotAfter, ttl)
	}
}

// TestVault runs vault init, ca get, vault ssh-pubkey, kubernetes issue and
// etcd issue against a real Vault with its root token.
func TestVault(t *testing.T) {
	addr, rootToken, root := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_CACERT", "")
	t.Setenv("VAULT_TOKEN", rootToken)
	e := newEnv(t)
	ctx := context.Background()

	// Before vault init nothing tells where Vault is.
	t.Run("no address", func(t *testing.T) {
		if stderr := e.fails(ExitInvalid, "", "vault", "ssh-pubkey"); !strings.Contains(stderr, "no Vault address") {
			t.Errorf("stderr: %s", stderr)
		}
	})

	e.ok("", "vault", "init", "--vault-addr", addr)
	first, err := e.st.GetVaultConfig(ctx)
	if err != nil || first.Endpoint != addr || first.RoleID == "" || first.SecretID == "" {
		t.Fatalf("stored vault config %+v, %v", first, err)
	}
	cas := map[string][]byte{}
	for _, name := range caNames() {
		if cas[name], err = e.st.GetCA(ctx, name); err != nil {
			t.Fatalf("CA %s not copied: %v", name, err)
		}
		sec, err := root.Logical().Read("cke/ca-" + name + "/cert/ca")
		if err != nil || strings.TrimSpace(sec.Data["certificate"].(string)) != strings.TrimSpace(string(cas[name])) {
			t.Errorf("CA %s in etcd is not Vault's: %v", name, err)
		}
	}

	// Again: the same layout and CAs, a new secret_id, and the first one
	// still logs in (a running engine keeps working). The address now comes
	// from the stored settings.
	e.ok("", "vault", "init")
	second, _ := e.st.GetVaultConfig(ctx)
	if second.RoleID != first.RoleID || second.SecretID == first.SecretID || second.Endpoint != addr {
		t.Errorf("second init: %+v after %+v", second, first)
	}
	for _, name := range caNames() {
		if pem, _ := e.st.GetCA(ctx, name); string(pem) != string(cas[name]) {
			t.Errorf("CA %s changed on the second init", name)
		}
	}
	for _, cfg := range []*storage.VaultConfig{first, second} {
		if _, err := ckevault.Login(ctx, loginConfig(cfg)); err != nil {
			t.Errorf("login with secret_id of %+v: %v", cfg, err)
		}
	}

	t.Run("ca get", func(t *testing.T) {
		out := e.ok("", "ca", "get", "kubernetes")
		if out != string(cas["kubernetes"]) || parseCert(t, []byte(out)).Subject.CommonName != "cke ca-kubernetes CA" {
			t.Errorf("ca get kubernetes: %q", out)
		}
	})

	t.Run("ssh-pubkey", func(t *testing.T) {
		out := e.ok("", "vault", "ssh-pubkey")
		if !strings.HasPrefix(out, "ssh-ed25519 ") || !strings.HasSuffix(out, " cke\n") {
			t.Errorf("ssh-pubkey: %q", out)
		}
		// vault init copied it to etcd for the nodes' set-up.
		if key, err := e.st.GetSSHPublicKey(context.Background()); err != nil || key+"\n" != out {
			t.Errorf("the key in etcd: %q, %v", key, err)
		}
	})

	t.Run("kubernetes issue", func(t *testing.T) {
		// Without cluster.yml the API server must be given.
		if stderr := e.fails(ExitNotFound, "", "kubernetes", "issue"); !strings.Contains(stderr, "give --server") {
			t.Errorf("no cluster.yml: %s", stderr)
		}
		e.ok("", "cluster", "set", e.file("cluster.yml", clusterYAML))
		out := e.ok("", "kubernetes", "issue", "--ttl", "3h", "--user", "alice")
		var kc struct {
			Clusters []struct {
				Cluster struct {
					Server string `json:"server"`
					CA     []byte `json:"certificate-authority-data"`
				} `json:"cluster"`
			} `json:"clusters"`
			Users []struct {
				Name string `json:"name"`
				User struct {
					Cert []byte `json:"client-certificate-data"`
					Key  []byte `json:"client-key-data"`
				} `json:"user"`
			} `json:"users"`
			Current string `json:"current-context"`
		}
		if err := yaml.Unmarshal([]byte(out), &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 {
			t.Fatalf("kubeconfig %q: %v", out, err)
		}
		if kc.Clusters[0].Cluster.Server != "https://10.69.0.4:6443" || kc.Users[0].Name != "admin:alice" || kc.Current != "admin:alice@kubernetes" {
			t.Errorf("kubeconfig %+v", kc)
		}
		cert := parseCert(t, kc.Users[0].User.Cert)
		if cert.Subject.CommonName != "admin:alice" || !slices.Equal(cert.Subject.Organization, []string{"system:masters"}) ||
			!slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("certificate %s, usages %v", cert.Subject, cert.ExtKeyUsage)
		}
		checkLifetime(t, cert, 3*time.Hour)
		if err := cert.CheckSignatureFrom(parseCert(t, cas["kubernetes"])); err != nil || string(kc.Clusters[0].Cluster.CA) != string(cas["kubernetes"]) {
			t.Errorf("not issued by cke/ca-kubernetes, or the kubeconfig trusts another CA: %v", err)
		}
		if _, err := x509.ParseECPrivateKey(mustPEM(t, kc.Users[0].User.Key)); err != nil {
			t.Errorf("key: %v", err)
		}
		// --server wins over cluster.yml.
		out = e.ok("", "kubernetes", "issue", "--server", "https://api.example:6443")
		if !strings.Contains(out, "server: https://api.example:6443\n") {
			t.Errorf("--server ignored:\n%s", out)
		}
	})

	t.Run("etcd issue", func(t *testing.T) {
		var got struct {
			Cert, Key string
			CACert    string    `json:"ca_cert"`
			NotAfter  time.Time `json:"not_after"`
		}
		if err := json.Unmarshal([]byte(e.ok("", "etcd", "issue", "backup", "--ttl", "30m")), &got); err != nil {
			t.Fatal(err)
		}
		cert := parseCert(t, []byte(got.Cert))
		if cert.Subject.CommonName != "backup" || len(cert.Subject.Organization) != 0 || got.CACert != string(cas["server"]) ||
			cert.CheckSignatureFrom(parseCert(t, cas["etcd-client"])) != nil || !got.NotAfter.Equal(cert.NotAfter) {
			t.Errorf("etcd certificate %s (CA %q)", cert.Subject, got.CACert)
		}
		checkLifetime(t, cert, 30*time.Minute)

		dir := t.TempDir()
		if out := e.ok("", "etcd", "issue", "alice", "--output-dir", dir); out != "" {
			t.Errorf("--output-dir printed %q", out)
		}
		for name, mode := range map[string]os.FileMode{"alice.crt": 0o644, "alice.key": 0o600, "ca.crt": 0o644} {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil || st.Mode().Perm() != mode {
				t.Errorf("%s: %v, %v", name, st, err)
			}
		}
	})

	t.Run("token refused", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", "not-a-token")
		if stderr := e.fails(ExitFailure, "", "vault", "ssh-pubkey"); !strings.Contains(stderr, "403") {
			t.Errorf("stderr: %s", stderr)
		}
		t.Setenv("VAULT_TOKEN", "")
		t.Setenv("HOME", t.TempDir())
		if stderr := e.fails(ExitInvalid, "", "kubernetes", "issue"); !strings.Contains(stderr, "no Vault token") {
			t.Errorf("stderr: %s", stderr)
		}
	})
}

func mustPEM(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM in %q", data)
	}
	return block.Bytes
}

// TestInitVaultKeepCredentials is neco setup's re-run: the stored login is
// kept while it works and replaced when it does not.
func TestInitVaultKeepCredentials(t *testing.T) {
	addr, _, root := vaulttest.Start(t)
	e := newEnv(t)
	ctx := context.Background()
	opts := VaultInitOptions{Endpoint: addr, KeepCredentials: true}
	if err := InitVault(ctx, root, e.st, opts); err != nil {
		t.Fatal(err)
	}
	first, _ := e.st.GetVaultConfig(ctx)
	if err := InitVault(ctx, root, e.st, opts); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.st.GetVaultConfig(ctx); *again != *first {
		t.Errorf("credentials replaced: %+v, were %+v", again, first)
	}
	// A secret_id that no longer works is replaced.
	if _, err := root.Logical().Write("auth/approle/role/"+ckevault.AppRoleName+"/secret-id/destroy", map[string]any{"secret_id": first.SecretID}); err != nil {
		t.Fatal(err)
	}
	if err := InitVault(ctx, root, e.st, opts); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.st.GetVaultConfig(ctx); again.SecretID == first.SecretID {
		t.Error("a destroyed secret_id was kept")
	}
	for _, name := range caNames() {
		if _, err := e.st.GetCA(ctx, name); err != nil {
			t.Errorf("CA %s: %v", name, err)
		}
	}
}

// TestRoleDataMatchesCkevault guards issueCert's copy of the role
// parameters: a role it writes must be the role ckevault writes for the
// same spec.
func TestRoleDataMatchesCkevault(t *testing.T) {
	addr, _, root := vaulttest.Start(t)
	e := newEnv(t)
	ctx := context.Background()
	if err := InitVault(ctx, root, e.st, VaultInitOptions{Endpoint: addr}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.st.GetVaultConfig(ctx)
	sess, err := ckevault.Login(ctx, loginConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ca   string
		role ckevault.RoleSpec
	}{
		{ckevault.CAKubernetes, ckevault.RoleAdmin},
		{ckevault.CAEtcdClient, ckevault.RoleClient},
	} {
		if _, err := sess.Issue(ctx, ckevault.IssueRequest{CA: tt.ca, Role: tt.role, CommonName: "x", TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		path := tt.ca + "/roles/" + tt.role.Name
		byCkevault, err := root.Logical().Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Delete(path); err != nil {
			t.Fatal(err)
		}
		if _, err := issueCert(ctx, root, tt.ca, tt.role, "y", time.Minute); err != nil {
			t.Fatal(err)
		}
		byCkecli, err := root.Logical().Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(byCkevault.Data, byCkecli.Data) {
			t.Errorf("role %s differs:\nckevault %v\nckecli   %v", path, byCkevault.Data, byCkecli.Data)
		}
	}
}
