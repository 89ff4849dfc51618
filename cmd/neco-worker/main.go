// Command neco-worker keeps its boot server at the neco version the updater
// requests: it installs the package and runs the update steps in lock-step
// with the other boot servers. See docs/cd.md.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"

	"github.com/openneco/neco/pkg/bootserver"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/worker"
)

func main() {
	load := storage.AddFlags(flag.CommandLine)
	listen := flag.String("listen", "127.0.0.1:10091", "address of /health and /metrics")
	lrn := flag.Int("lrn", -1, "logical rack number of this boot server (default: read from -rack-file)")
	rackFile := flag.String("rack-file", storage.DefaultRackFile, "file holding this boot server's LRN")
	var bs worker.BootServerConfig
	flag.StringVar(&bs.ShareDir, "share-dir", "/usr/share/neco", "the package's data: sabakan config template, Ignition templates, images, assets, dhcp.json")
	flag.StringVar(&bs.SabakanConfig, "sabakan-config", "/etc/sabakan/config.yml", "sabakan configuration file the worker renders")
	flag.StringVar(&bs.SabakanURL, "sabakan-url", "http://127.0.0.1:10080", "sabakan's REST API, where the sabakan-contents step uploads")
	flag.StringVar(&bs.RegistryConfig, "registry-config", bootserver.RegistryConfigFile, "neco-registry configuration file the worker renders")
	flag.StringVar(&bs.RegistryHealthURL, "registry-health-url", bootserver.RegistryHealthURL, "neco-registry's /health, which the registry-config step waits for")
	flag.StringVar(&bs.ClusterFile, "cluster", "/etc/neco/cluster.yml", "cluster description (boot server addresses and ports; written by neco setup)")
	flag.StringVar(&bs.Root, "root", "/", "directory this boot server's neco files (certificates, Vault credentials) live under, as neco --root")
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
		ckeCfg := *cfg
		ckeCfg.Prefix = ckestorage.DefaultPrefix
		ckeClient, err := etcdutil.New(&ckeCfg)
		if err != nil {
			return err
		}
		defer ckeClient.Close()
		bs.CKE = ckestorage.New(ckeClient)

		reg := daemon.NewRegistry()
		health := func(ctx context.Context) error { _, err := st.Snapshot(ctx); return err }
		if _, err := (daemon.Server{Addr: *listen, Handler: daemon.MetricsMux(reg, health)}).Start(nil); err != nil {
			return err
		}

		bs.LRN = *lrn
		steps, err := worker.BootServerSteps(client, bs)
		if err != nil {
			return err
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
