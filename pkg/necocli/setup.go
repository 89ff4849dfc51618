package necocli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/setup"
	"github.com/openneco/neco/pkg/version"
)

// exitCrashedOnPurpose is the exit status of neco setup when its test hook
// --crash-after-stage stopped it (setup.ErrCrashedOnPurpose): the
// integration test tells it from a failure by it.
const exitCrashedOnPurpose = 3

func newSetupCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	var tokenFile, ver, daemons string
	var timeout time.Duration
	var crashAfter int
	cmd := &cobra.Command{
		Use:   "setup LRN LRN LRN...",
		Short: "bootstrap the boot servers (run on every one of them at once)",
		Long: `setup bootstraps the boot servers with the given logical rack numbers
(LRNs). Run it on every boot server with the same arguments and the same
bootstrap token; the servers wait for each other. At least three are needed.

Stages: a temporary CA on the leader (lowest LRN) signs every server's
certificates (keys never leave a server); etcd starts with mutual TLS, one
member per server; Vault starts in HA with etcd storage, is initialised by
the leader and unsealed everywhere, and gets its PKI mounts (the temporary
CAs imported), roles, policies and AppRole; every certificate is re-issued by
Vault and etcd and Vault restart one server at a time; etcd authentication is
turned on (users by certificate CN); every server is registered, the first
update request is written and the CD daemons start. The leader finally
revokes Vault's initial root token.

Boot servers find each other through the cluster description (--cluster) or,
without one, through the reference address plan (LRN r → 10.69.0.0/20 +
192·r + 3). Re-running after a crash resumes where the server stopped; a
re-run that cannot continue the same cluster fails and says what to do.

See docs/bootstrap.md.`,
		Example: `  head -c 32 /dev/urandom | base64 > /root/bootstrap-token; chmod 600 /root/bootstrap-token
  # copy the file to every boot server, then on each:
  neco setup --bootstrap-token-file /root/bootstrap-token 0 1 2`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lrns, err := bootserver.ParseLRNs(args)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			c, err := b.cluster()
			if err != nil {
				return cli.UsageError("%v", err)
			}
			servers, err := c.Resolve(lrns, bootserver.MinServers)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			me, err := b.me(servers)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			token, err := readToken(tokenFile, "NECO_BOOTSTRAP_TOKEN")
			if err != nil {
				return cli.UsageError("%v", err)
			}
			svc, err := b.services()
			if err != nil {
				return cli.UsageError("%v", err)
			}
			var ds []string
			for _, d := range strings.Split(daemons, ",") {
				if d = strings.TrimSpace(d); d != "" {
					ds = append(ds, d)
				}
			}
			start := time.Now()
			err = setup.Run(cmd.Context(), &setup.Options{
				Cluster: c, Servers: servers, Me: me, Paths: b.paths(), Token: token,
				Services: svc, Version: ver, Timeout: timeout, Daemons: ds,
				Log: logger(cmd), CrashAfter: crashAfter,
			})
			if errors.Is(err, setup.ErrCrashedOnPurpose) {
				return cli.WithCode(exitCrashedOnPurpose, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "boot server %d is set up (%.1fs)\n", me.LRN, time.Since(start).Seconds())
			return nil
		},
	}
	b.addFlags(cmd)
	cmd.Flags().StringVar(&tokenFile, "bootstrap-token-file", "", "file with the shared bootstrap secret (at least 16 characters; or set NECO_BOOTSTRAP_TOKEN)")
	cmd.Flags().StringVar(&ver, "version", version.Version, "neco version of the first update request (the installed one)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the other boot servers at each stage")
	cmd.Flags().StringVar(&daemons, "start", setup.DefaultDaemons, "comma-separated daemons started at the end: the CD daemons, node-health-agent and sabakan-state-setter (the units the neco package ships)")
	cmd.Flags().IntVar(&crashAfter, "crash-after-stage", 0, "test hook: exit with status 3 after finishing this stage number")
	cmd.Flags().MarkHidden("crash-after-stage")
	return cmd
}
