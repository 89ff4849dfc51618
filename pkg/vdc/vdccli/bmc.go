package vdccli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/vdc/vbmc"
)

func bmcCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bmc",
		Short: "The machines' virtual BMCs (Redfish over HTTPS)",
		Long: `A data center generated with BMCs (menu option "bmc") has a BMC network and a
namespace holding every machine's BMC address. 'vdc bmc serve' answers there
for every machine, in Redfish: the ComputerSystem's PowerState and its Reset
action (On, ForceOff, GracefulShutdown, ForceRestart, GracefulRestart,
PowerCycle), which stop and start nspawn machines and pause and reset QEMU
machines. See docs/bmc.md.`,
	}
	cmd.AddCommand(bmcServeCmd(g))
	return cmd
}

func bmcServeCmd(g *globals) *cobra.Command {
	var config, creds, certOut string
	cmd := &cobra.Command{
		Use:   "serve --config vbmc.json --credentials credentials.json",
		Short: "Serve the virtual BMCs until stopped",
		Long: `Serves one Redfish service per machine listed in --config (JSON {"host": the
namespace holding the addresses, "machines": [{"name", "serial", "address"}]}),
on port 443 of the machine's BMC address, with the credentials of
--credentials (JSON {"username", "password"}) and a self-signed certificate
written to --cert-out. Runs in the foreground; the data center's tooling
starts it as a service of the BMC namespace, so 'vdc destroy' stops it.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := vbmc.ReadConfig(config)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			cr, err := vbmc.ReadCredentials(creds)
			if err != nil {
				return cli.UsageError("%v", err)
			}
			if _, err := g.open(); err != nil {
				return err
			}
			s := &vbmc.Server{Names: g.names(), Config: c, Credentials: cr, CertFile: certOut,
				Log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
			return s.Serve(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the machines and their BMC addresses (required)")
	cmd.Flags().StringVar(&creds, "credentials", "", "the BMCs' user name and password (required)")
	cmd.Flags().StringVar(&certOut, "cert-out", "", "write the BMCs' certificate (PEM) here")
	cmd.MarkFlagRequired("config")
	cmd.MarkFlagRequired("credentials")
	return cmd
}
