// Command neco-worker keeps its boot server at the neco version the updater
// requests: it installs the package and runs the update steps in lock-step
// with the other boot servers. See docs/cd.md.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	sabakanclient "github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/services"
	"github.com/openneco/neco/pkg/worker"
)

func main() {
	load := storage.AddFlags(flag.CommandLine)
	listen := flag.String("listen", "127.0.0.1:10091", "address of /health and /metrics")
	lrn := flag.Int("lrn", -1, "logical rack number of this boot server (default: read from -rack-file)")
	rackFile := flag.String("rack-file", storage.DefaultRackFile, "file holding this boot server's LRN")
	shareDir := flag.String("share-dir", "/usr/share/neco", "the package's data: sabakan config template, Ignition templates, images, assets, dhcp.json")
	sabakanConfig := flag.String("sabakan-config", "/etc/sabakan/config.yml", "sabakan configuration file the worker renders")
	sabakanURL := flag.String("sabakan-url", "http://127.0.0.1:10080", "sabakan's REST API, where the sabakan-contents step uploads")
	clusterFile := flag.String("cluster", "/etc/neco/cluster.yml", "cluster description (boot server addresses and ports; written by neco setup)")
	root := flag.String("root", "/", "directory this boot server's neco files (certificates, Vault credentials) live under, as neco --root")
	flag.Parse()

	daemon.Run(func(ctx context.Context) error {
		cfg, err := load()
		if err != nil {
			return err
		}
		if *lrn < 0 {
			if *lrn, err = storage.ReadLRN(*rackFile); err != nil {
				return err
			}
		}
		client, err := etcdutil.New(cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		st := storage.New(client)

		reg := daemon.NewRegistry()
		health := func(ctx context.Context) error { _, err := st.Snapshot(ctx); return err }
		if _, err := (daemon.Server{Addr: *listen, Handler: daemon.MetricsMux(reg, health)}).Start(nil); err != nil {
			return err
		}

		cluster, err := bootserver.LoadCluster(*clusterFile, true)
		if err != nil {
			return err
		}
		me, err := cluster.Lookup(*lrn)
		if err != nil {
			return err
		}
		peerURL := func(lrn int) string {
			s, err := cluster.Lookup(lrn)
			if err != nil {
				return ""
			}
			return cluster.EtcdPeerURL(s)
		}
		sc, err := sabakanclient.New(*sabakanURL)
		if err != nil {
			return err
		}
		svc := &services.Systemd{}
		vc, err := bootserver.NewVaultClient(cluster.VaultURL(me), bootserver.NewPaths(*root))
		if err != nil {
			return err
		}
		steps := []worker.Step{
			worker.EtcdStep(client.Cluster,
				worker.ServiceEtcd{Services: svc, Maintenance: client.Maintenance, Endpoint: cluster.EtcdClientURL(me)}, peerURL),
			// Vault keeps its data in etcd: after etcd's restarts.
			worker.VaultStep(worker.ServiceVault{Services: svc, API: vc}),
			// Before sabakan first starts on this server: its etcd user and
			// this server's certificate for it (neco init / init-local).
			// After a restart: serving, for the uploads of the next step.
			worker.WithHooks(
				worker.ServiceConfigStep("sabakan-config", "sabakan", *sabakanConfig, worker.TemplateFile(filepath.Join(*shareDir, "sabakan.yml"), me.Address), svc),
				func(ctx context.Context, _ *worker.StepEnv) error {
					issued, err := bootserver.EnsureService(ctx, client, cluster, me, bootserver.NewPaths(*root), "sabakan")
					if issued {
						slog.Info("issued sabakan's etcd certificate for this boot server")
					}
					return err
				},
				worker.WaitHealthy(strings.TrimSuffix(*sabakanURL, "/")+"/health")),
			worker.SabakanContentsStep(*shareDir, worker.SabakanUploader{Client: sc}),
			worker.FinalStep(),
		}
		w := &worker.Worker{LRN: *lrn, Storage: st, Installer: deb.SystemInstaller{}, Steps: steps, Metrics: worker.NewMetrics(reg)}
		err = w.Run(ctx)
		if errors.Is(err, worker.ErrHandover) {
			// The package's postinst restarts this service; exiting
			// non-zero makes systemd start the new binary otherwise.
			slog.Info("handing over to the newly installed neco-worker")
		}
		return err
	})
}
