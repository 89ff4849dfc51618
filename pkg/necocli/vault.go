package necocli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/setup"
)

func newVaultCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "operate the boot servers' Vault",
	}
	cmd.AddCommand(newVaultUnsealCommand(g), newVaultShowUnsealKeyCommand(g), newVaultJoinTokenCommand(g), newVaultLoginCommand(g))
	return cmd
}

func newVaultLoginCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	return &cobra.Command{
		Use:   "login",
		Short: "print a Vault token of this boot server (for ckecli kubernetes issue)",
		Long: `login logs in to Vault with this boot server's AppRole credentials (readable
only by root) and prints the token: what a boot server may do, which includes
issuing the Kubernetes cluster's admin certificates (ckecli kubernetes issue).
The token lives as long as the AppRole's tokens (docs/bootstrap.md); keep it
in the environment, not in files.`,
		Example: `  export VAULT_TOKEN=$(neco vault login)
  ckecli kubernetes issue > ~/.kube/config`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := b.loadLocal()
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd.Context(), time.Minute)
			defer cancel()
			vc, err := bootserver.NewVaultClient(l.cluster.VaultURL(l.me), l.paths)
			if err != nil {
				return err
			}
			if err := bootserver.Login(ctx, vc, l.paths); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), vc.Token())
			return err
		},
	}
}

func newVaultUnsealCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "unseal this boot server's Vault (after a restart)",
		Long: `unseal reads the unseal key from etcd (only etcd's root user, i.e. a boot
server, can) and unseals this server's Vault. A Vault restarts sealed; run
this after every restart of vault on this server.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, client, err := b.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := withTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := bootserver.UnsealLocal(ctx, client, l.cluster, l.me, l.paths); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "vault is unsealed")
			return nil
		},
	}
	b.addFlags(cmd)
	return cmd
}

func newVaultShowUnsealKeyCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	cmd := &cobra.Command{
		Use:   "show-unseal-key",
		Short: "print Vault's unseal key (keep it secret)",
		Long: `show-unseal-key prints Vault's unseal key from etcd, for disaster recovery
and for vault operator generate-root. It is the key to every secret in Vault:
do not paste it into logs, tickets or chat.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, client, err := b.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := withTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			key, err := storage.New(client).UnsealKey(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	b.addFlags(cmd)
	return cmd
}

func newVaultJoinTokenCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "issue-join-token LRN",
		Short: "print a join ticket that lets boot server LRN join (single use)",
		Long: `issue-join-token prints a join ticket (JSON) for boot server LRN: the current
boot servers, the CA certificates, and a single-use Vault response-wrapping
token for an AppRole secret_id, valid for --ttl. Carry it to the new server
(a file readable only by root) and run neco join LRN --ticket FILE there.`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lrns, err := bootserver.ParseLRNs(args)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			l, client, err := b.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := withTimeout(cmd.Context(), time.Minute)
			defer cancel()
			servers, err := bootserver.Registered(ctx, client, l.cluster)
			if err != nil {
				return err
			}
			vc, err := bootserver.NewVaultClient(l.cluster.VaultURL(l.me), l.paths)
			if err != nil {
				return err
			}
			if err := bootserver.Login(ctx, vc, l.paths); err != nil {
				return err
			}
			t, err := setup.IssueJoinTicket(ctx, vc, l.cluster, servers, l.paths, lrns[0], ttl)
			if err != nil {
				return err
			}
			return cli.PrintJSON(cmd.OutOrStdout(), t)
		},
	}
	b.addFlags(cmd)
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the ticket is valid")
	return cmd
}

func newCertsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "inspect and renew this boot server's certificates",
	}
	b := &bootOptions{g: g}
	var out cli.Output
	show := &cobra.Command{
		Use:   "show",
		Short: "list this server's certificates and when they expire",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := b.paths()
			type row struct {
				File     string    `json:"file"`
				Subject  string    `json:"subject"`
				NotAfter time.Time `json:"not_after"`
				Error    string    `json:"error,omitempty"`
			}
			var rows []row
			for _, f := range []string{p.ServerCert, p.PeerCert, p.ClientCert, p.VaultEtcdCert, p.BackupCert} {
				c, err := pki.CheckFile(f, nil, time.Now())
				r := row{File: f}
				if c != nil {
					r.Subject, r.NotAfter = c.Subject.CommonName, c.NotAfter
				}
				if err != nil {
					r.Error = err.Error()
				}
				rows = append(rows, r)
			}
			if out == cli.OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), rows)
			}
			for _, r := range rows {
				fmt.Fprintf(cmd.OutOrStdout(), "%-50s %-10s %s %s\n", r.File, r.Subject, r.NotAfter.Format(time.RFC3339), r.Error)
			}
			return nil
		},
	}
	b.addFlags(show)
	cli.AddOutputFlag(show, &out, cli.OutputSimple, cli.OutputJSON)

	rb := &bootOptions{g: g}
	var timeout time.Duration
	renew := &cobra.Command{
		Use:   "renew",
		Short: "re-issue this server's certificates from Vault and restart etcd and Vault",
		Long: `renew makes new keys for this boot server's certificates (server, etcd peer,
etcd root/vault/backup clients), has Vault sign them with this server's
AppRole credentials, then restarts etcd (waiting for it to rejoin) and
Vault (unsealing it). It works with expired certificates, since Vault login
does not use them. Renew one boot server at a time.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := rb.paths()
			c, err := rb.cluster()
			if err != nil {
				return err
			}
			me, err := rb.meFromRack(c)
			if err != nil {
				return err
			}
			svc, err := rb.services()
			if err != nil {
				return cli.UsageError("%v", err)
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			vc, err := bootserver.NewVaultClient(c.VaultURL(me), p)
			if err != nil {
				return err
			}
			if err := bootserver.Login(ctx, vc, p); err != nil {
				return err
			}
			if err := bootserver.IssueFromVault(ctx, vc, me, p); err != nil {
				return err
			}
			client, err := (&local{paths: p, cluster: c, servers: c.Servers, me: me}).etcd()
			if err != nil {
				return err
			}
			defer client.Close()
			if err := setup.RestartAndUnseal(ctx, svc, client, c, me, c.Servers, p, timeout); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "certificates renewed; etcd and vault restarted")
			return nil
		},
	}
	rb.addFlags(renew)
	renew.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long renewing may take")
	cmd.AddCommand(show, renew)
	return cmd
}
