package necocli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/setup"
)

func newJoinCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	var ticketFile, daemons string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "join LRN",
		Short: "make this server a new boot server of an existing cluster",
		Long: `join makes this server, boot server LRN, a member of an existing cluster.
First issue a join ticket on a set-up boot server:

  neco vault issue-join-token LRN > join.json     (valid 1h, single use)

and carry it here. join then gets Vault credentials with the ticket, has
Vault issue this server's certificates (its keys are made here), adds and
starts its etcd member, starts and unseals Vault, registers the server
(the updater includes it in the next update request) and starts the CD
daemons. Re-running it after a failure resumes.`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lrns, err := bootserver.ParseLRNs(args)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			data, err := os.ReadFile(ticketFile)
			if err != nil {
				return cli.UsageError("read the join ticket (--ticket): %v", err)
			}
			var t setup.JoinTicket
			if err := json.Unmarshal(data, &t); err != nil {
				return cli.UsageError("%s is not a join ticket: %v", ticketFile, err)
			}
			if t.LRN != lrns[0] {
				return cli.UsageError("the join ticket is for boot server %d, not %d", t.LRN, lrns[0])
			}
			svc, err := b.services()
			if err != nil {
				return cli.UsageError("%v", err)
			}
			start := time.Now()
			err = setup.Join(cmd.Context(), &setup.JoinOptions{
				Ticket: &t, Paths: b.paths(), Services: svc, Timeout: timeout, Log: logger(cmd),
				Daemons: splitList(daemons),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "boot server %d joined (%.1fs)\n", t.LRN, time.Since(start).Seconds())
			return nil
		},
	}
	b.addFlags(cmd)
	cmd.Flags().StringVar(&ticketFile, "ticket", "join.json", "join ticket from neco vault issue-join-token")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long join may take")
	cmd.Flags().StringVar(&daemons, "start", setup.DefaultDaemons, "comma-separated daemons started at the end (see neco setup --help)")
	return cmd
}

func newLeaveCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	var force bool
	cmd := &cobra.Command{
		Use:   "leave LRN",
		Short: "remove a boot server from the cluster",
		Long: `leave removes boot server LRN: its etcd member and its registration, so
that the updater leaves it out of the next update request. Run it on any
other boot server.

Three boot servers must remain while the leaving one is up: join a
replacement first. A boot server that is down (a lost disk, a dead machine)
may leave even from three, and must, before its replacement joins: etcd
with a dead member and a new one not yet started has no quorum. Then
reinstall it (or another machine) and neco join it. --force skips the
check.`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lrns, err := bootserver.ParseLRNs(args)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			l, err := b.loadLocal()
			if err != nil {
				return err
			}
			if lrns[0] == l.me.LRN {
				return cli.UsageError("run neco leave %d on another boot server, not on the one leaving", lrns[0])
			}
			client, err := l.etcd()
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
			srv, err := l.cluster.Lookup(lrns[0])
			for _, s := range servers {
				if s.LRN == lrns[0] {
					srv, err = s, nil
				}
			}
			if err != nil {
				return cli.WithCode(cli.ExitNotFound, fmt.Errorf("boot server %d is neither registered nor described: %w", lrns[0], err))
			}
			if err := setup.Leave(ctx, client, l.cluster, srv, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "boot server %d left the cluster; stop and wipe it before reuse\n", lrns[0])
			return nil
		},
	}
	b.addFlags(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "remove the boot server even if it is up and fewer than three would remain")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}
