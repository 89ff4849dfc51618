package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

// VaultUnit is the name of the boot servers' Vault service.
const VaultUnit = "vault"

// LocalVault is this boot server's Vault service.
type LocalVault interface {
	// Restart restarts the local Vault so that it runs the installed
	// binary. Vault comes back sealed; Restart need not wait for its API.
	Restart(ctx context.Context) error
	// Client is a client of the local Vault's API (no token needed).
	Client() *vault.Client
}

// ServiceVault is the LocalVault of a boot server whose Vault service was
// set up by `neco setup` or `neco join`.
type ServiceVault struct {
	Services ServiceManager
	// API is a client of this server's Vault (bootserver.NewVaultClient).
	API *vault.Client
}

// Restart implements LocalVault.
func (s ServiceVault) Restart(ctx context.Context) error { return s.Services.Restart(ctx, VaultUnit) }

// Client implements LocalVault.
func (s ServiceVault) Client() *vault.Client { return s.API }

// VaultStep restarts every boot server's Vault for the new version, one
// server at a time in the order of the request (lowest LRN first): a
// server restarts its Vault only once every server before it recorded
// that its Vault serves the version, so that at most one Vault of the
// cluster is ever down or sealed because of the update, and a Vault that
// does not come back stops the others from restarting theirs. After the
// restart it unseals Vault with the unseal key stored in etcd, waits until
// it serves (active or standby) and records the version in
// install/<LRN>/services/vault. A Vault already recorded for the version
// is not restarted; one found sealed is unsealed first, whatever its
// version.
func VaultStep(local LocalVault) Step {
	return Step{Name: "vault", Run: func(ctx context.Context, e *StepEnv) error {
		version := e.Request.Version
		// Read the key first: without it, a restarted Vault would stay sealed.
		key, err := e.Storage.UnsealKey(ctx)
		if err != nil {
			return fmt.Errorf("read vault's unseal key from etcd: %w", err)
		}
		ran, err := e.Storage.ServiceVersion(ctx, e.LRN, VaultUnit)
		if err != nil {
			return err
		}
		vc := local.Client()
		before, probeErr := sealStatus(ctx, vc)
		if probeErr == nil && before.Sealed {
			// A sealed Vault is out of service already: unseal it at once,
			// not in this server's turn, so that it is back while the
			// servers before this one restart theirs.
			slog.Warn("vault was sealed before the update; unsealing it", "vault", vc.Address())
			if err := unsealVault(ctx, vc, key); err != nil {
				return fmt.Errorf("vault was sealed before the update and could not be unsealed: %w", err)
			}
			slog.Info("unsealed vault, which was sealed before the update", "vault", vc.Address())
		}
		if ran == version {
			// Already runs this version: make sure it serves, restart nothing.
			if err := unsealVault(ctx, vc, key); err != nil {
				return fmt.Errorf("vault (already running %s) does not serve: %w", version, err)
			}
			return nil
		}
		if err := waitTurn(ctx, e, VaultUnit); err != nil {
			return err
		}
		attrs := []any{"last_version", ran, "version", version}
		if probeErr == nil {
			attrs = append(attrs, "vault_version", before.Version)
		} else {
			attrs = append(attrs, "vault_not_answering", probeErr.Error())
		}
		slog.Info("restarting vault for the new version", attrs...)
		if err := local.Restart(ctx); err != nil {
			return fmt.Errorf("restart vault: %v", err)
		}
		if err := unsealVault(ctx, vc, key); err != nil {
			return fmt.Errorf("vault did not serve again after its restart for %s (unsealed with the key in etcd /neco/%s): %w",
				version, storage.VaultUnsealKey, err)
		}
		if after, err := sealStatus(ctx, vc); err == nil {
			slog.Info("vault serves again", "vault_version", after.Version, "version", version)
		}
		return recordVersion(ctx, e, VaultUnit, version)
	}}
}

// vaultError is an error of Vault, kept apart from etcd's: its text is
// kept, on one line (the API's errors span several, and the message ends
// up in the worker's status), but nothing it wraps, so that a Vault that
// timed out is never taken for an unavailable etcd (etcdutil.Unavailable),
// which makes the worker run the step again.
type vaultError struct{ msg string }

func newVaultError(err error) error {
	return &vaultError{msg: strings.Join(strings.Fields(err.Error()), " ")}
}

func (e *vaultError) Error() string { return e.msg }

// unsealVault unseals the Vault of c with key unless it is unsealed and
// waits until it serves, active or standby (bootserver.Unseal), within ctx.
func unsealVault(ctx context.Context, c *vault.Client, key string) error {
	if err := bootserver.Unseal(ctx, c, key); err != nil {
		return newVaultError(err)
	}
	return nil
}

// sealStatus asks Vault its seal status, briefly: Vault may be down.
func sealStatus(ctx context.Context, c *vault.Client) (*vault.SealStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, vaultProbeTimeout)
	defer cancel()
	st, err := c.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return nil, newVaultError(err)
	}
	return st, nil
}

// vaultProbeTimeout bounds the look at Vault before a restart.
const vaultProbeTimeout = 5 * time.Second

// waitTurn returns once every server before this one in the request has
// recorded that its unit runs the requested version, and fails at once
// when a server of the request aborted or the request changed: a unit
// that did not come back on one server stops the others from restarting
// theirs.
func waitTurn(ctx context.Context, e *StepEnv, unit string) error {
	version := e.Request.Version
	logged := false
	for {
		snap, err := e.Storage.Snapshot(ctx)
		if err != nil {
			return err
		}
		if snap.Request == nil || snap.Request.ID != e.Request.ID || snap.Request.Stop {
			return fmt.Errorf("update request %d was stopped or replaced while waiting to restart %s", e.Request.ID, unit)
		}
		statuses := snap.CurrentStatuses()
		for _, lrn := range e.Request.Servers {
			if st := statuses[lrn]; st != nil && st.Cond == neco.CondAborted {
				return fmt.Errorf("boot server %d aborted the update at step %d (%s): not restarting %s here", lrn, st.Step, st.StepName, unit)
			}
		}
		var before []int
		for _, lrn := range e.Request.Servers[:e.Index] {
			v, err := e.Storage.ServiceVersion(ctx, lrn, unit)
			if err != nil {
				return err
			}
			if v != version {
				before = append(before, lrn)
			}
		}
		if len(before) == 0 {
			return nil
		}
		if !logged {
			slog.Info("waiting for the boot servers before this one to restart their "+unit, "servers", before, "version", version)
			logged = true
		}
		// Records written after the snapshot wake this at once.
		e.Storage.WaitChange(ctx, snap.Revision, 10*time.Second)
		if ctx.Err() != nil {
			return fmt.Errorf("boot server(s) %v did not restart their %s for %s in time (each restarts after the one before it serves again): %v",
				before, unit, version, ctx.Err())
		}
	}
}

// recordVersion records that unit runs version on this server; a moment of
// etcd unavailability is waited out here rather than by running the step
// again, which would restart the unit once more.
func recordVersion(ctx context.Context, e *StepEnv, unit, version string) error {
	for {
		err := e.Storage.SetServiceVersion(ctx, e.LRN, unit, version)
		if err == nil || !etcdutil.Unavailable(err) || ctx.Err() != nil {
			return err
		}
		slog.Warn("etcd unavailable while recording the restart; retrying", "unit", unit, "error", err)
		sleep(ctx, stepRetryInterval)
	}
}
