package necocli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/bootserver"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/services"
	"github.com/openneco/neco/pkg/version"
	"github.com/openneco/neco/pkg/worker"
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
			if err := bootserver.CheckServiceName(args[0]); err != nil {
				return cli.UsageError("%v", err)
			}
			_, client, err := b.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := withTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := bootserver.InitService(ctx, client, args[0]); err != nil {
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
			if err := bootserver.CheckServiceName(name); err != nil {
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
			if _, ok := svc.(*services.Processes); ok && len(command) == 0 {
				return cli.UsageError("without systemd, give the command that runs %s after --", name)
			}
			ctx, cancel := withTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			vc, err := bootserver.NewVaultClient(l.cluster.VaultURL(l.me), l.paths)
			if err != nil {
				return err
			}
			if err := bootserver.Login(ctx, vc, l.paths); err != nil {
				return err
			}
			cfg, err := bootserver.InitLocal(ctx, vc, l.cluster, l.servers, l.paths, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate for %s issued; etcd connection file %s\n", name, cfg)
			if len(command) == 0 {
				if s, ok := svc.(*services.Systemd); ok {
					return s.Enable(ctx, name)
				}
				return nil
			}
			full, err := services.Command(command[0], command[1:]...)
			if err != nil {
				return err
			}
			return svc.Start(ctx, services.Unit{Name: name, Description: name, Command: full, StopTimeout: 30 * time.Second})
		},
	}
	b.addFlags(cmd)
	return cmd
}

func newInitDataCommand(g *globalOptions) *cobra.Command {
	var sabakanURL, ipam, dhcp, contents, ver, ckeTemplate string
	var controlPlanes int
	b := &bootOptions{g: g}
	cmd := &cobra.Command{
		Use:   "init-data",
		Short: "upload sabakan's IPAM and DHCP configuration and boot contents",
		Long: `init-data puts what a fresh data center needs into sabakan: the IPAM
configuration (--ipam, JSON), the DHCP configuration (--dhcp, JSON) and the
boot contents in --contents, laid out as in the package's /usr/share/neco:

  images/<os>/<id>.tar     OS images (kernel and initrd.gz in a tar)
  assets/<name>            assets served to machines
  ignitions/roles/<role>/  Ignition template trees, uploaded as <role>/<version>
  dhcp.json                DHCP configuration (when --dhcp is not given)

With --cke-template, the Kubernetes engine builds its cluster from sabakan:
init-data stores the cluster.yml template, the constraint control-plane-count
(--control-planes), --sabakan-url as the engine's sabakan, and enables the
integration (docs/cke.md). neco-worker stores each release's template after.

The Ignition templates are uploaded with the metadata the worker gives
them: the registries of every registered boot server (containerd's mirrors
on the nodes) and their CA, read through this boot server's setup.

Run it once, on any boot server, after neco init-local sabakan. It is
idempotent: contents already there and an identical IPAM configuration are
left as they are, so it can be re-run after a failure. The IPAM
configuration cannot change once machines are registered.`,
		Example: `  neco init-data --ipam /usr/share/neco/ipam.json --contents /usr/share/neco
  neco init-data --cke-template /usr/share/neco/cke-template.yml --control-planes 3`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ipam == "" && dhcp == "" && contents == "" && ckeTemplate == "" {
				return cli.UsageError("nothing to upload: give --ipam, --dhcp, --contents or --cke-template")
			}
			if controlPlanes < 1 {
				return cli.UsageError("--control-planes %d: at least 1", controlPlanes)
			}
			sc, err := client.New(sabakanURL, client.WithUser("neco-init-data"))
			if err != nil {
				return cli.UsageError("%v", err)
			}
			ctx := cmd.Context()
			if ipam != "" {
				if err := uploadIPAM(ctx, sc, ipam); err != nil {
					return err
				}
			}
			if dhcp != "" {
				var cfg sabakan.DHCPConfig
				if err := readJSON(dhcp, &cfg); err != nil {
					return err
				}
				if err := sc.SetDHCP(ctx, &cfg); err != nil {
					return fmt.Errorf("set DHCP configuration: %w", err)
				}
			}
			if ckeTemplate != "" {
				if err := initCKE(ctx, b, ckeTemplate, sabakanURL, controlPlanes); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "the Kubernetes engine builds its cluster from sabakan: template %s, %d control planes\n", ckeTemplate, controlPlanes)
			}
			if contents == "" {
				return nil
			}
			c, err := worker.ScanContents(contents, ver)
			if err != nil {
				return err
			}
			if dhcp != "" {
				c.DHCP = ""
			}
			if len(c.Ignitions) > 0 {
				// The same metadata as the worker's uploads: the nodes'
				// registries are this data center's boot servers, the engine's
				// SSH key from its etcd keys. Off a
				// boot server, templates that need it are refused by
				// sabakan with the missing key's name.
				if c.Meta, err = ignitionMeta(ctx, b); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Ignition templates uploaded without the boot servers' metadata (registries, the Kubernetes engine's SSH key): %v\n", err)
				}
			}
			if err := (worker.SabakanUploader{Client: sc}).Upload(ctx, c); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "uploaded %d images, %d assets, %d Ignition roles\n", len(c.Images), len(c.Assets), len(c.Ignitions))
			return nil
		},
	}
	cmd.Flags().StringVar(&sabakanURL, "sabakan-url", "http://127.0.0.1:10080", "sabakan's REST API (this host must be in its allow-ips)")
	cmd.Flags().StringVar(&ipam, "ipam", "", "sabakan IPAM configuration (JSON)")
	cmd.Flags().StringVar(&dhcp, "dhcp", "", "sabakan DHCP configuration (JSON)")
	cmd.Flags().StringVar(&contents, "contents", "", "directory of boot contents (images, assets, ignitions)")
	cmd.Flags().StringVar(&ver, "version", version.Version, "id under which the Ignition templates are uploaded")
	cmd.Flags().StringVar(&ckeTemplate, "cke-template", "", "cluster.yml template of the Kubernetes engine's sabakan integration (YAML)")
	cmd.Flags().IntVar(&controlPlanes, "control-planes", 3, "with --cke-template: the cluster's control planes (constraint control-plane-count)")
	b.addFlags(cmd)
	return cmd
}

// initCKE sets the Kubernetes engine's sabakan integration up: template,
// control-plane-count, sabakan's URL, enabled.
func initCKE(ctx context.Context, b *bootOptions, file, sabakanURL string, controlPlanes int) error {
	t, err := worker.ReadCKETemplate(file)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	l, err := b.loadLocal()
	if err != nil {
		return err
	}
	client, err := l.ckeEtcd()
	if err != nil {
		return err
	}
	defer client.Close()
	st := ckestorage.New(client)
	cons, err := st.GetConstraints(ctx)
	if err != nil {
		return err
	}
	cons.ControlPlaneCount = controlPlanes
	if err := st.PutConstraints(ctx, cons); err != nil {
		return err
	}
	if err := st.PutSabakanURL(ctx, sabakanURL); err != nil {
		return err
	}
	if err := st.PutSabakanTemplate(ctx, t); err != nil {
		return err
	}
	return st.SetSabakanDisabled(ctx, false)
}

// ignitionMeta is the Ignition templates' metadata for this boot server's
// data center (worker.IgnitionMeta).
func ignitionMeta(ctx context.Context, b *bootOptions) (map[string]any, error) {
	l, client, err := b.connect()
	if err != nil {
		return nil, fmt.Errorf("the Ignition templates need the boot servers' registries: %w", err)
	}
	defer client.Close()
	ckeClient, err := l.ckeEtcd()
	if err != nil {
		return nil, err
	}
	defer ckeClient.Close()
	return worker.IgnitionMeta(ctx, storage.New(client), ckestorage.New(ckeClient), l.cluster, l.paths.ServerCA, bootserver.RegistryPort)
}

// uploadIPAM sets the IPAM configuration; an identical configuration
// already in place counts as done.
func uploadIPAM(ctx context.Context, sc *client.Client, path string) error {
	var cfg sabakan.IPAMConfig
	if err := readJSON(path, &cfg); err != nil {
		return err
	}
	err := sc.SetIPAM(ctx, &cfg)
	if errors.Is(err, sabakan.ErrConflict) {
		if cur, gerr := sc.IPAM(ctx); gerr == nil && *cur == cfg {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("set IPAM configuration: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return cli.UsageError("%s: %v", path, err)
	}
	return nil
}
