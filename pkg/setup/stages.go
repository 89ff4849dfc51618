package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/pki"
)

// certs obtains the temporary certificates and waits for every server.
func (r *run) certs(ctx context.Context) error {
	for _, spec := range bootserver.CertSpecs(r.Me, r.Paths) {
		if bootserver.CertValid(spec) == nil {
			continue
		}
		err := bootserver.Issue(spec, func(csrPEM []byte) ([]byte, error) {
			if r.isLeader() {
				csr, err := pki.ParseCSR(csrPEM)
				if err != nil {
					return nil, err
				}
				return r.cas.Sign(spec.Kind, r.Me, csr)
			}
			return r.rc.Sign(ctx, r.Me.LRN, spec.Kind, csrPEM)
		})
		if err != nil {
			return err
		}
	}
	return r.rendezvousBarrier(ctx, "certs")
}

// etcd starts this server's member and waits for a quorum.
func (r *run) etcd(ctx context.Context) error {
	u, err := EtcdUnit(r.Cluster, r.Me, r.Servers, r.Paths, "new", r.st.ClusterToken)
	if err != nil {
		return err
	}
	if err := r.Services.Start(ctx, u); err != nil {
		return err
	}
	if err := r.connectEtcd(); err != nil {
		return err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	if err := waitEtcd(wctx, r.client, len(r.Servers)); err != nil {
		return fmt.Errorf("%w; are the other boot servers running neco setup, and can they reach %s?", err, r.Cluster.EtcdPeerURL(r.Me))
	}
	return nil
}

func (r *run) vaultClient() (*vault.Client, error) {
	return bootserver.NewVaultClient(r.Cluster.VaultURL(r.Me), r.Paths)
}

// vault starts Vault; the leader initialises and configures it, everyone
// unseals theirs and gets AppRole credentials.
func (r *run) vault(ctx context.Context) error {
	if !r.isLeader() {
		if err := r.waitStage(ctx, StageVault, []int{r.leader().LRN}); err != nil {
			return err
		}
	}
	vc, err := r.startVault(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	status, err := bootserver.WaitVaultAPI(wctx, vc)
	if err != nil {
		return err
	}
	if r.isLeader() {
		if err := r.initVault(wctx, vc, status.Initialized); err != nil {
			return err
		}
	}
	key, err := r.store().UnsealKey(ctx)
	if err != nil {
		return err
	}
	if err := bootserver.Unseal(wctx, vc, key); err != nil {
		return err
	}
	if r.isLeader() {
		root, err := r.store().SetupRootToken(ctx)
		if err != nil {
			return err
		}
		vc.SetToken(root)
		if err := configureVault(wctx, vc, r.cas); err != nil {
			return err
		}
		if err := r.configureCKE(wctx, vc); err != nil {
			return err
		}
		vc.ClearToken()
	}
	return r.ensureAppRole(wctx, vc)
}

// startVault writes Vault's configuration, starts it and waits for its API.
func (r *run) startVault(ctx context.Context) (*vault.Client, error) {
	if err := WriteVaultConfig(r.Cluster, r.Me, r.Servers, r.Paths); err != nil {
		return nil, err
	}
	u, err := VaultUnit(r.Paths)
	if err != nil {
		return nil, err
	}
	if err := r.Services.Start(ctx, u); err != nil {
		return nil, err
	}
	vc, err := r.vaultClient()
	if err != nil {
		return nil, err
	}
	wctx, cancel := r.waitCtx(ctx)
	defer cancel()
	if _, err := bootserver.WaitVaultAPI(wctx, vc); err != nil {
		return nil, err
	}
	return vc, nil
}

func (r *run) initVault(ctx context.Context, vc *vault.Client, initialized bool) error {
	if initialized {
		if _, err := r.store().UnsealKey(ctx); err != nil {
			return fmt.Errorf("vault is initialised but its unseal key is not in etcd (a setup crashed between the two): delete Vault's data with `etcdctl del --prefix %s` (with this server's root certificate) and re-run neco setup", VaultEtcdPath)
		}
		return nil
	}
	resp, err := vc.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("initialise vault: %w", err)
	}
	if err := r.store().PutVaultSecrets(ctx, resp.Keys[0], resp.RootToken); err != nil {
		return fmt.Errorf("store vault's unseal key in etcd (vault is initialised: see docs/bootstrap.md, recovery): %w", err)
	}
	r.log().Info("vault initialised; its unseal key is kept in etcd")
	return nil
}

// ensureAppRole makes sure this server has working AppRole credentials and
// leaves r.vc logged in with them.
func (r *run) ensureAppRole(ctx context.Context, vc *vault.Client) error {
	if err := bootserver.Login(ctx, vc, r.Paths); err == nil {
		r.vc = vc
		return nil
	}
	root, err := r.store().SetupRootToken(ctx)
	if err != nil {
		return err
	}
	vc.SetToken(root)
	id, err := bootserver.NewSecretID(ctx, vc, r.Me.LRN, 0)
	vc.ClearToken()
	if err != nil {
		return err
	}
	creds, _ := json.Marshal(bootserver.AppRoleCreds{RoleID: bootserver.BootServerRole, SecretID: id})
	if err := fileutil.WriteAtomic(r.Paths.AppRole, creds, 0o600); err != nil {
		return err
	}
	if err := bootserver.Login(ctx, vc, r.Paths); err != nil {
		return err
	}
	r.vc = vc
	return nil
}

// reissue replaces the temporary certificates by ones from Vault, then
// restarts etcd and Vault one server at a time (LRN order) so that the
// cluster keeps its quorum.
func (r *run) reissue(ctx context.Context) error {
	if r.vc == nil {
		vc, err := r.vaultClient()
		if err != nil {
			return err
		}
		if err := bootserver.Login(ctx, vc, r.Paths); err != nil {
			return err
		}
		r.vc = vc
	}
	if err := bootserver.IssueFromVault(ctx, r.vc, r.Me, r.Paths); err != nil {
		return err
	}
	// Restarts begin once every server has its Vault credentials: a Vault
	// restarted while another server still asks it for them fails over
	// under that server's feet.
	if err := r.waitStage(ctx, StageVault, lrns(r.Servers)); err != nil {
		return err
	}
	var before []int
	for _, s := range r.Servers {
		if s.LRN < r.Me.LRN {
			before = append(before, s.LRN)
		}
	}
	if err := r.waitStage(ctx, StageReissued, before); err != nil {
		return err
	}
	return RestartAndUnseal(ctx, r.Services, r.client, r.Cluster, r.Me, r.Servers, r.Paths, r.Timeout)
}

// auth enables etcd authentication once every server uses Vault's
// certificates; the others wait for the leader.
func (r *run) auth(ctx context.Context) error {
	if !r.isLeader() {
		return r.waitStage(ctx, StageAuth, []int{r.leader().LRN})
	}
	if err := r.waitStage(ctx, StageReissued, lrns(r.Servers)); err != nil {
		return err
	}
	st, err := r.client.AuthStatus(ctx)
	if err != nil {
		return err
	}
	if st.Enabled {
		return nil
	}
	return EnableEtcdAuth(ctx, r.client)
}

// finish registers the server, writes the client configuration, makes the
// first update request (leader), starts the CD daemons, and at last the
// leader removes the bootstrap secrets.
func (r *run) finish(ctx context.Context) error {
	if err := WriteLocalConfig(r.Cluster, r.Me, r.Servers, r.Paths); err != nil {
		return err
	}
	if err := WriteHealthAgentDefaults(r.Me, r.Servers, r.Paths); err != nil {
		return err
	}
	if err := r.store().RegisterBootServer(ctx, r.Me.LRN, r.Me.Address); err != nil {
		return fmt.Errorf("register boot server: %w", err)
	}
	// etcd and Vault already run the installed version: neco-worker's etcd
	// and vault steps need not restart them for the first update request,
	// which is that version.
	for _, unit := range []string{"etcd", "vault"} {
		if err := r.store().SetServiceVersion(ctx, r.Me.LRN, unit, r.Version); err != nil {
			return err
		}
	}
	if r.isLeader() {
		// Every server registered with the first request, in one
		// transaction (storage.FirstRequest says why).
		addrs := map[int]string{}
		for _, s := range r.Servers {
			addrs[s.LRN] = s.Address
		}
		if err := r.store().FirstRequest(ctx, addrs, r.Version); err != nil {
			return err
		}
	}
	if err := StartDaemons(ctx, r.Services, r.Daemons, r.Paths, r.Me); err != nil {
		return err
	}
	if !r.isLeader() {
		return nil
	}
	// Every server must be done with the bootstrap secrets first.
	if err := r.store().FinishStage(ctx, r.Me.LRN, StageDone); err != nil {
		return err
	}
	if err := r.waitStage(ctx, StageDone, lrns(r.Servers)); err != nil {
		return err
	}
	return r.cleanup(ctx)
}

// cleanup revokes the initial root token and deletes it and the temporary
// CA keys: afterwards boot servers act through their AppRole credentials.
func (r *run) cleanup(ctx context.Context) error {
	root, err := r.store().SetupRootToken(ctx)
	if err == nil {
		vc, err := r.vaultClient()
		if err != nil {
			return err
		}
		vc.SetToken(root)
		err = bootserver.RetryVault(ctx, func() error { return vc.Auth().Token().RevokeSelfWithContext(ctx, "") })
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			err = nil // revoked by an earlier run that crashed before deleting it
		}
		if err != nil {
			return fmt.Errorf("revoke vault's initial root token: %w", err)
		}
		if err := r.store().DeleteSetupRootToken(ctx); err != nil {
			return err
		}
	}
	for _, n := range []string{"server", "etcd-peer", "etcd-client"} {
		if err := os.Remove(r.Paths.BootstrapDir + "/ca-" + n + ".key"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	r.log().Info("bootstrap secrets removed: vault's initial root token is revoked, the temporary CA keys are deleted")
	return nil
}
