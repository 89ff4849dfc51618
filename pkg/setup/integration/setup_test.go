package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/services"
	"github.com/openneco/neco/pkg/setup"
)

// TestBadInput: wrong invocations fail at once with advice, and nothing is
// left half-configured.
func TestBadInput(t *testing.T) {
	prepare(t)
	cl := newCluster(t, 3)
	cl.timeout = "4s"
	ctx := context.Background()

	for _, tt := range []struct {
		name string
		lrns []string
		want string
	}{
		{"fewer than three", []string{"0", "1"}, "at least 3 are needed"},
		{"duplicate LRN", []string{"0", "1", "1"}, "LRN 1 is given twice"},
		{"not a number", []string{"0", "1", "x"}, "not a logical rack number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"setup"}, cl.bootArgs(0)...), "--bootstrap-token-file", cl.token)
			r := cl.neco(ctx, 0, append(args, tt.lrns...)...)
			if r.code != 2 || !strings.Contains(r.out, tt.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", r.code, tt.want, r.out)
			}
			if _, err := os.Stat(cl.roots[0]); !os.IsNotExist(err) {
				t.Fatalf("a rejected invocation wrote %s", cl.roots[0])
			}
		})
	}

	t.Run("unreachable leader", func(t *testing.T) {
		r := cl.neco(ctx, 1, cl.setupArgs(1, 0, 1, 2)...)
		if r.code != 1 || !strings.Contains(r.out, "cannot reach the bootstrap leader (boot server 0)") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		leader := make(chan result, 1)
		go func() { leader <- cl.neco(lctx, 0, cl.setupArgs(0, 0, 1, 2)...) }()
		bad := filepath.Join(cl.dir, "bad-token")
		must(t, os.WriteFile(bad, []byte("not-the-right-token-at-all"), 0o600))
		args := cl.setupArgs(1, 0, 1, 2)
		for i, a := range args {
			if a == cl.token {
				args[i] = bad
			}
		}
		r := cl.neco(ctx, 1, args...)
		if r.code != 1 || !strings.Contains(r.out, "bootstrap token differs from the leader's") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
		// Nothing of the rejected server was issued.
		if _, err := os.Stat(cl.paths(1).ServerCert); !os.IsNotExist(err) {
			t.Fatal("a server with a wrong token got a certificate")
		}
		// The leader waits for the others and gives up with their names.
		lr := <-leader
		if lr.code != 1 || !strings.Contains(lr.out, "boot server(s) 1, 2") {
			t.Fatalf("leader: exit %d:\n%s", lr.code, lr.out)
		}
	})
}

// TestBootstrap sets up three boot servers, checks what they can do, loses
// one, joins a fourth, lets one leave and renews certificates.
func TestBootstrap(t *testing.T) {
	prepare(t)
	cl := newCluster(t, 4)
	ctx := context.Background()

	took := cl.setupAll(ctx, 0, 1, 2)
	t.Logf("setup of three boot servers took %.1fs", took.Seconds())

	root := cl.etcd(0, 0, 1, 2)
	t.Run("cluster", func(t *testing.T) {
		ml, err := root.MemberList(ctx)
		must(t, err)
		if len(ml.Members) != 3 {
			t.Fatalf("%d members", len(ml.Members))
		}
		st, err := root.AuthStatus(ctx)
		must(t, err)
		if !st.Enabled {
			t.Fatal("etcd authentication is off")
		}
		resp, err := root.Get(ctx, "/neco/info/bootservers/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		must(t, err)
		if len(resp.Kvs) != 3 {
			t.Fatalf("%d boot servers registered", len(resp.Kvs))
		}
		cur, err := root.Get(ctx, "/neco/status/current")
		must(t, err)
		// The CD daemons run by now and may have reconfigured or stopped the
		// request; its version stays the installed one.
		if len(cur.Kvs) != 1 || !strings.Contains(string(cur.Kvs[0].Value), `"version":"2026.01.01-1"`) {
			t.Fatalf("first update request: %v", cur.Kvs)
		}
		for l := 0; l < 3; l++ {
			// setup records the etcd and Vault it started, so the first
			// update request restarts neither on any server.
			for _, unit := range []string{"etcd", "vault"} {
				v, err := root.Get(ctx, "/neco/"+storage.ServiceKey(l, unit))
				must(t, err)
				if len(v.Kvs) != 1 || string(v.Kvs[0].Value) != "2026.01.01-1" {
					t.Fatalf("boot server %d: %s service record %v", l, unit, v.Kvs)
				}
			}
		}
		if tok, _ := root.Get(ctx, "/neco/setup/vault-root-token"); len(tok.Kvs) != 0 {
			t.Fatal("vault's initial root token is still in etcd")
		}
		if _, err := os.Stat(filepath.Join(cl.paths(0).BootstrapDir, "ca-server.key")); !os.IsNotExist(err) {
			t.Fatal("the temporary CA key is still on disk")
		}
		for l := 0; l < 3; l++ {
			for _, f := range []string{cl.paths(l).ServerKey, cl.paths(l).ClientKey, cl.paths(l).AppRole, cl.paths(l).Config, cl.paths(l).StateFile} {
				fi, err := os.Stat(f)
				must(t, err)
				if fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("%s is %v: secrets must be 0600", f, fi.Mode().Perm())
				}
			}
			// The certificates now come from Vault, not the temporary CA:
			// Vault sets the issuer's serial; also they verify against the CA.
			if _, err := pki.CheckFile(cl.paths(l).ServerCert, nil, time.Now()); err != nil {
				t.Error(err)
			}
		}
		// Vault is unsealed on every server, one of them active.
		active := 0
		for l := 0; l < 3; l++ {
			h := vaultHealth(t, cl, l)
			if h.Sealed || !h.Initialized {
				t.Errorf("vault of boot-%d: %+v", l, h)
			}
			if !h.Standby {
				active++
			}
		}
		if active != 1 {
			t.Errorf("%d active vaults", active)
		}
		// Nothing secret in the logs of setup's daemons.
		unseal, _ := root.Get(ctx, "/neco/vault-unseal-key")
		key := string(unseal.Kvs[0].Value)
		for l := 0; l < 3; l++ {
			entries, _ := os.ReadDir(cl.paths(l).ServicesDir)
			for _, e := range entries {
				data, _ := os.ReadFile(filepath.Join(cl.paths(l).ServicesDir, e.Name()))
				if strings.Contains(string(data), key) {
					t.Errorf("%s contains the unseal key", e.Name())
				}
			}
		}
	})

	t.Run("re-run is a no-op", func(t *testing.T) {
		r := cl.neco(ctx, 1, cl.setupArgs(1, 0, 1, 2)...)
		if r.code != 0 || !strings.Contains(r.out, "already set up") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
	})

	t.Run("service users write only their prefix", func(t *testing.T) {
		r := cl.neco(ctx, 0, append(append([]string{"init"}, cl.bootArgs(0)...), "sabakan")...)
		if r.code != 0 {
			t.Fatalf("init: %s", r.out)
		}
		r = cl.neco(ctx, 1, append(append([]string{"init-local"}, cl.bootArgs(1)...), "sabakan", "--", "sleep", "3600")...)
		if r.code != 0 {
			t.Fatalf("init-local: %s", r.out)
		}
		p := cl.paths(1)
		sab := cl.certClient(p.ServiceCA("sabakan"), p.ServiceCert("sabakan"), p.ServiceKey("sabakan"), 0, 1, 2)
		if _, err := sab.Put(ctx, "/sabakan/machines/x", "1"); err != nil {
			t.Fatalf("sabakan cannot write its own prefix: %v", err)
		}
		for _, k := range []string{"/neco/x", "/vault/x", "/cke/x"} {
			if _, err := sab.Put(ctx, k, "1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("sabakan put %s: %v, want permission denied", k, err)
			}
		}
		if _, err := sab.Get(ctx, "/neco/vault-unseal-key"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("sabakan read the unseal key: %v", err)
		}
		back := cl.certClient(p.ServerCA, p.BackupCert, p.BackupKey, 0, 1, 2)
		if _, err := back.Get(ctx, "/sabakan/machines/x"); err != nil {
			t.Errorf("backup cannot read: %v", err)
		}
		if _, err := back.Put(ctx, "/sabakan/machines/x", "2"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("backup put: %v, want permission denied", err)
		}
		vcl := cl.certClient(p.ServerCA, p.VaultEtcdCert, p.VaultEtcdKey, 0, 1, 2)
		if _, err := vcl.Put(ctx, "/neco/x", "1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("vault's certificate put /neco/x: %v, want permission denied", err)
		}
		// A certificate from another CA is refused by TLS.
		ca, err := pki.NewCA("stranger", time.Hour)
		must(t, err)
		key, _ := pki.NewKey()
		csrPEM, _ := pki.NewCSR(key, "root")
		csr, _ := pki.ParseCSR(csrPEM)
		certPEM, _ := ca.Sign(csr, "root", nil, pki.ClientAuth, time.Hour)
		keyPEM, _ := pki.EncodeKey(key)
		dir := t.TempDir()
		must(t, os.WriteFile(dir+"/c.crt", certPEM, 0o600))
		must(t, os.WriteFile(dir+"/c.key", keyPEM, 0o600))
		stranger := cl.certClient(p.ServerCA, dir+"/c.crt", dir+"/c.key", 0)
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := stranger.Get(sctx, "/neco/vault-unseal-key"); err == nil {
			t.Error("a certificate of a foreign CA was accepted")
		}
	})

	// What neco-worker does before sabakan first starts on a server: the
	// service's user (here one nobody made with neco init) and this
	// server's certificate, then nothing the second time.
	t.Run("the CD worker prepares a service", func(t *testing.T) {
		root := cl.etcd(2, 0, 1, 2)
		me := cl.c.Servers[2]
		issued, err := bootserver.EnsureService(ctx, root, cl.c, me, cl.paths(2), "ensured")
		if err != nil || !issued {
			t.Fatalf("EnsureService = %v, %v; want issued", issued, err)
		}
		p := cl.paths(2)
		svc := cl.certClient(p.ServiceCA("ensured"), p.ServiceCert("ensured"), p.ServiceKey("ensured"), 0, 1, 2)
		if _, err := svc.Put(ctx, "/ensured/x", "1"); err != nil {
			t.Fatalf("the service cannot write its own prefix: %v", err)
		}
		if _, err := svc.Put(ctx, "/neco/x", "1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("the service put /neco/x: %v, want permission denied", err)
		}
		before, _ := os.ReadFile(p.ServiceCert("ensured"))
		issued, err = bootserver.EnsureService(ctx, root, cl.c, me, p, "ensured")
		after, _ := os.ReadFile(p.ServiceCert("ensured"))
		if err != nil || issued || string(before) != string(after) {
			t.Errorf("second EnsureService = %v, %v (certificate replaced: %v); want it kept", issued, err, string(before) != string(after))
		}
	})

	t.Run("one boot server lost", func(t *testing.T) {
		cl.kill(2, "etcd")
		cl.kill(2, "vault")
		two := cl.etcd(0, 0, 1)
		if _, err := two.Put(ctx, "/neco/test/quorum", "ok"); err != nil {
			t.Fatalf("etcd lost quorum with two of three: %v", err)
		}
		// Vault stays available through the other two (a standby takes
		// over if boot-2 was active).
		signed := false
		deadline := time.Now().Add(90 * time.Second)
		for !signed && time.Now().Before(deadline) {
			for _, l := range []int{0, 1} {
				if vaultSign(t, cl, l) == nil {
					signed = true
					break
				}
			}
			if !signed {
				time.Sleep(time.Second)
			}
		}
		if !signed {
			t.Fatal("vault did not issue certificates with one boot server lost")
		}
		// The server comes back: restart and unseal.
		svc := &services.Processes{Dir: cl.paths(2).ServicesDir}
		must(t, svc.Restart(ctx, "etcd"))
		must(t, svc.Restart(ctx, "vault"))
		r := cl.neco(ctx, 2, append([]string{"vault", "unseal"}, cl.bootArgs(2)...)...)
		if r.code != 0 {
			t.Fatalf("vault unseal: %s", r.out)
		}
		three := cl.etcd(2, 2)
		if _, err := three.Get(ctx, "/neco/test/quorum"); err != nil {
			t.Fatalf("boot-2's etcd did not rejoin: %v", err)
		}
	})

	t.Run("join a fourth, then one leaves", func(t *testing.T) {
		r := cl.neco(ctx, 0, append(append([]string{"vault", "issue-join-token"}, cl.bootArgs(0)...), "3")...)
		if r.code != 0 {
			t.Fatalf("issue-join-token: %s", r.out)
		}
		ticket := filepath.Join(cl.dir, "join.json")
		must(t, os.WriteFile(ticket, []byte(r.out), 0o600))

		// A tampered ticket is refused with advice, before anything starts.
		var tk setup.JoinTicket
		must(t, json.Unmarshal([]byte(r.out), &tk))
		tk.Wrapped = "hvs.wrong"
		bad, _ := json.Marshal(tk)
		badFile := filepath.Join(cl.dir, "bad-join.json")
		must(t, os.WriteFile(badFile, bad, 0o600))
		r = cl.neco(ctx, 3, append(append([]string{"join"}, cl.bootArgs(3)...), "--ticket", badFile, "--start", daemons, "3")...)
		if r.code != 1 || !strings.Contains(r.out, "join token was rejected") {
			t.Fatalf("tampered ticket: exit %d:\n%s", r.code, r.out)
		}

		r = cl.neco(ctx, 3, append(append([]string{"join"}, cl.bootArgs(3)...), "--ticket", ticket, "--start", daemons, "3")...)
		if r.code != 0 {
			cl.dumpLogs()
			t.Fatalf("join: exit %d\n%s", r.code, r.out)
		}
		t.Logf("join took %.1fs", r.dur.Seconds())
		ml, err := root.MemberList(ctx)
		must(t, err)
		if len(ml.Members) != 4 {
			t.Fatalf("%d members after join", len(ml.Members))
		}
		if h := vaultHealth(t, cl, 3); h.Sealed {
			t.Fatal("the new server's vault is sealed")
		}
		// The used ticket cannot let anyone else in.
		r = cl.neco(ctx, 3, append(append([]string{"join"}, cl.bootArgs(3)...), "--ticket", ticket, "--start", daemons, "3")...)
		if r.code != 0 {
			t.Fatalf("join re-run on the joined server: %s", r.out)
		}

		r = cl.neco(ctx, 1, append(append([]string{"leave"}, cl.bootArgs(1)...), "0")...)
		if r.code != 0 {
			cl.dumpLogs()
			t.Fatalf("leave: %s", r.out)
		}
		cl.killServer(0)
		rest := cl.etcd(1, 1, 2, 3)
		ml, err = rest.MemberList(ctx)
		must(t, err)
		if len(ml.Members) != 3 {
			t.Fatalf("%d members after leave", len(ml.Members))
		}
		if _, err := rest.Put(ctx, "/neco/test/after-leave", "ok"); err != nil {
			t.Fatal(err)
		}
		resp, err := rest.Get(ctx, "/neco/info/bootservers/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		must(t, err)
		if len(resp.Kvs) != 3 || strings.HasSuffix(string(resp.Kvs[0].Key), "/0") {
			t.Fatalf("registrations after leave: %v", resp.Kvs)
		}
		// Below three members, leave refuses while the server is up, and
		// changes nothing.
		r = cl.neco(ctx, 1, append(append([]string{"leave"}, cl.bootArgs(1)...), "3")...)
		if r.code == 0 || !strings.Contains(r.out, "join a replacement first") {
			t.Fatalf("leave below three: exit %d:\n%s", r.code, r.out)
		}
		resp, err = rest.Get(ctx, "/neco/info/bootservers/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		must(t, err)
		if len(resp.Kvs) != 3 {
			t.Fatalf("a refused leave changed the registrations: %v", resp.Kvs)
		}
	})

	t.Run("expired certificate, then renew", func(t *testing.T) {
		// A copy of boot-1's files with an expired client certificate.
		p := cl.paths(1)
		copyRoot := t.TempDir()
		cp := bootserver.NewPaths(copyRoot)
		for _, f := range [][2]string{{p.ClientCA, cp.ClientCA}, {p.ServerCA, cp.ServerCA}, {p.Rack, cp.Rack}, {p.ClientKey, cp.ClientKey}} {
			data, err := os.ReadFile(f[0])
			must(t, err)
			must(t, os.MkdirAll(filepath.Dir(f[1]), 0o755))
			must(t, os.WriteFile(f[1], data, 0o600))
		}
		ca, _ := pki.NewCA("expired test", time.Hour)
		key, _ := pki.NewKey()
		csrPEM, _ := pki.NewCSR(key, "root")
		csr, _ := pki.ParseCSR(csrPEM)
		old, err := ca.Sign(csr, "root", nil, pki.ClientAuth, -time.Minute)
		must(t, err)
		must(t, os.WriteFile(cp.ClientCert, old, 0o600))
		args := []string{"init", "--root", copyRoot, "--cluster", cl.desc, "foo"}
		r := cl.neco(ctx, 1, args...)
		if r.code == 0 || !strings.Contains(r.out, "expired") || !strings.Contains(r.out, "neco certs renew") {
			t.Fatalf("expired certificate: exit %d:\n%s", r.code, r.out)
		}

		before, err := pki.CheckFile(p.PeerCert, nil, time.Now())
		must(t, err)
		r = cl.neco(ctx, 1, append([]string{"certs", "renew"}, cl.bootArgs(1)...)...)
		if r.code != 0 {
			cl.dumpLogs()
			t.Fatalf("certs renew: %s", r.out)
		}
		after, err := pki.CheckFile(p.PeerCert, nil, time.Now())
		must(t, err)
		if before.SerialNumber.Cmp(after.SerialNumber) == 0 {
			t.Fatal("the peer certificate was not renewed")
		}
		if _, err := cl.etcd(1, 1).Put(ctx, "/neco/test/renewed", "ok"); err != nil {
			t.Fatalf("etcd after renew: %v", err)
		}
		if h := vaultHealth(t, cl, 1); h.Sealed {
			t.Fatal("vault sealed after renew")
		}
	})

	// A server that is down may leave even from three members: its disk is
	// lost, and it must go before a replacement joins.
	t.Run("a dead server leaves", func(t *testing.T) {
		cl.killServer(3)
		r := cl.neco(ctx, 1, append(append([]string{"leave"}, cl.bootArgs(1)...), "3")...)
		if r.code != 0 {
			t.Fatalf("leave of a dead server: exit %d:\n%s", r.code, r.out)
		}
		rest := cl.etcd(1, 1, 2)
		ml, err := rest.MemberList(ctx)
		must(t, err)
		if len(ml.Members) != 2 {
			t.Fatalf("%d members after the dead server left", len(ml.Members))
		}
		if _, err := rest.Put(ctx, "/neco/test/after-dead-leave", "ok"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestResumeAfterCrash: a server that crashes midway resumes on re-run and
// the result is one cluster.
func TestResumeAfterCrash(t *testing.T) {
	prepare(t)
	cl := newCluster(t, 3)
	ctx := context.Background()

	type outcome struct {
		lrn int
		result
	}
	results := make(chan outcome, 2)
	for _, l := range []int{0, 2} {
		go func() { results <- outcome{l, cl.neco(ctx, l, cl.setupArgs(l, 0, 1, 2)...)} }()
	}
	// boot-1 dies right after Vault came up on it.
	crash := cl.neco(ctx, 1, append(cl.setupArgs(1, 0, 1, 2), "--crash-after-stage", "3")...)
	if crash.code != 3 {
		t.Fatalf("crash hook: exit %d:\n%s", crash.code, crash.out)
	}
	cl.kill(1, "vault") // its daemons die with it
	cl.kill(1, "etcd")
	again := cl.neco(ctx, 1, cl.setupArgs(1, 0, 1, 2)...)
	// Every server's own account, whichever failed: a server stuck at a
	// barrier is explained by the log of the one it waits for.
	ok := again.code == 0 && strings.Contains(again.out, "resuming an interrupted setup")
	outs := map[int]result{1: again}
	for range 2 {
		o := <-results
		outs[o.lrn] = o.result
		ok = ok && o.code == 0
	}
	if !ok {
		cl.dumpLogs()
		for l := 0; l < 3; l++ {
			t.Logf("neco setup on boot-%d (re-run on boot-1): exit %d after %s:\n%s", l, outs[l].code, outs[l].dur.Round(time.Second), outs[l].out)
		}
		t.Fatal("a setup failed (outputs above)")
	}
	// One cluster: every member reports the same cluster ID.
	var id uint64
	for l := 0; l < 3; l++ {
		c := cl.etcd(l, l)
		st, err := c.Status(ctx, cl.c.EtcdClientURL(cl.c.Servers[l]))
		must(t, err)
		if l > 0 && st.Header.ClusterId != id {
			t.Fatalf("boot-%d is in cluster %x, boot-0 in %x", l, st.Header.ClusterId, id)
		}
		id = st.Header.ClusterId
		ml, err := c.MemberList(ctx)
		must(t, err)
		if len(ml.Members) != 3 {
			t.Fatalf("%d members", len(ml.Members))
		}
	}
}

func vaultHealth(t *testing.T, cl *cluster, l int) *vault.HealthResponse {
	t.Helper()
	vc, err := bootserver.NewVaultClient(cl.c.VaultURL(cl.c.Servers[l]), cl.paths(l))
	must(t, err)
	h, err := vc.Sys().Health()
	must(t, err)
	return h
}

// vaultSign has server l's Vault issue a client certificate with its
// AppRole credentials.
func vaultSign(t *testing.T, cl *cluster, l int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vc, err := bootserver.NewVaultClient(cl.c.VaultURL(cl.c.Servers[l]), cl.paths(l))
	if err != nil {
		return err
	}
	vc.SetMaxRetries(0)
	if err := bootserver.Login(ctx, vc, cl.paths(l)); err != nil {
		return err
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "probe")
	sec, err := vc.Logical().WriteWithContext(ctx, bootserver.MountEtcdClient+"/sign/"+bootserver.PKIRole, map[string]any{"csr": string(csr), "common_name": "probe"})
	if err != nil {
		return err
	}
	if sec == nil || sec.Data["certificate"] == nil {
		return errors.New("no certificate")
	}
	return nil
}
