package necocli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/setup"
)

func newInitCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	cmd := &cobra.Command{
		Use:   "init NAME",
		Short: "create the etcd user and role of a service (sabakan, cke, …)",
		Long: `init creates, once for the whole cluster, the etcd user NAME with a role that
may read and write /NAME/ and nothing else. The service authenticates with a
client certificate whose CN is NAME: run neco init-local NAME on each boot
server that runs it. Running init again changes nothing.`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := setup.CheckServiceName(args[0]); err != nil {
				return cli.UsageError("%v", err)
			}
			l, err := b.loadLocal()
			if err != nil {
				return err
			}
			client, err := l.etcd("/neco/")
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := withTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := setup.InitService(ctx, client, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "etcd user %s may read and write /%s/\n", args[0], args[0])
			return nil
		},
	}
	b.addFlags(cmd)
	return cmd
}

func newInitLocalCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	cmd := &cobra.Command{
		Use:   "init-local NAME [-- COMMAND ARGS...]",
		Short: "issue this server's certificate for a service, then start it",
		Long: `init-local issues this boot server's etcd client certificate for service NAME
(CN=NAME, issued by Vault with this server's AppRole; the key is made here and
kept 0600) into /etc/neco/services/NAME/, writes the service's etcd connection
file there (etcd.yml, cybozu-go/etcdutil format, prefix /NAME/), and starts
the service: the unit the neco package ships under systemd, or the COMMAND
given after -- (required with --service-manager process). Run neco init NAME
once first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := setup.CheckServiceName(name); err != nil {
				return cli.UsageError("%v", err)
			}
			command := args[1:]
			l, err := b.loadLocal()
			if err != nil {
				return err
			}
			svc, err := b.services()
			if err != nil {
				return cli.UsageError("%v", err)
			}
			if _, ok := svc.(*setup.Processes); ok && len(command) == 0 {
				return cli.UsageError("without systemd, give the command that runs %s after --", name)
			}
			ctx, cancel := withTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			vc, err := setup.NewVaultClient(l.cluster.VaultURL(l.me), l.paths)
			if err != nil {
				return err
			}
			if err := setup.Login(ctx, vc, l.paths); err != nil {
				return err
			}
			cfg, err := setup.InitLocal(ctx, vc, l.cluster, l.servers, l.paths, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate for %s issued; etcd connection file %s\n", name, cfg)
			if len(command) == 0 {
				if s, ok := svc.(*setup.Systemd); ok {
					return s.Enable(ctx, name)
				}
				return nil
			}
			full, err := setup.Command(command[0], command[1:]...)
			if err != nil {
				return err
			}
			return svc.Start(ctx, setup.Unit{Name: name, Description: name, Command: full, StopTimeout: 30 * time.Second})
		},
	}
	b.addFlags(cmd)
	return cmd
}

// dataUploader is set when the sabakan client lands (see setup.DataUploader).
var dataUploader func(l *local) (setup.DataUploader, error)

func newInitDataCommand(g *globalOptions) *cobra.Command {
	b := &bootOptions{g: g}
	var ipam, dhcp, contents string
	cmd := &cobra.Command{
		Use:   "init-data",
		Short: "upload sabakan's IPAM and DHCP configuration and boot contents",
		Long: `init-data puts what a fresh data center needs into sabakan: the IPAM
configuration (--ipam, JSON), the DHCP configuration (--dhcp, JSON) and the
boot contents in --contents (OS images, assets, ignitions). Run it once on
any boot server after neco init-local sabakan.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := b.loadLocal()
			if err != nil {
				return err
			}
			if dataUploader == nil {
				return cli.WithCode(cli.ExitFailure, errors.New("this neco was built without the sabakan client: init-data is not available yet"))
			}
			up, err := dataUploader(l)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			for _, f := range []struct {
				path string
				put  func([]byte) error
			}{
				{ipam, func(d []byte) error { return up.UploadIPAM(ctx, d) }},
				{dhcp, func(d []byte) error { return up.UploadDHCP(ctx, d) }},
			} {
				if f.path == "" {
					continue
				}
				data, err := os.ReadFile(f.path)
				if err != nil {
					return cli.UsageError("%v", err)
				}
				if err := f.put(data); err != nil {
					return err
				}
			}
			if contents != "" {
				return up.UploadContents(ctx, contents)
			}
			return nil
		},
	}
	b.addFlags(cmd)
	cmd.Flags().StringVar(&ipam, "ipam", "", "sabakan IPAM configuration (JSON)")
	cmd.Flags().StringVar(&dhcp, "dhcp", "", "sabakan DHCP configuration (JSON)")
	cmd.Flags().StringVar(&contents, "contents", "", "directory of boot contents (images, assets, ignitions)")
	return cmd
}
