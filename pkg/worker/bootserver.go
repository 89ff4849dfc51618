package worker

import (
	"cmp"
	"context"
	"log/slog"
	"path/filepath"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	sabakanclient "github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/services"
)

// BootServerConfig is what the steps of a boot server need to know about
// it: neco-worker's flags.
type BootServerConfig struct {
	// LRN is this boot server's logical rack number.
	LRN int
	// ClusterFile is the cluster description (boot server addresses and
	// ports; neco setup writes it). A missing file gives the reference
	// address plan, as for neco.
	ClusterFile string
	// Root is the directory this boot server's neco files (certificates,
	// Vault credentials) live under, "/" in production.
	Root string
	// ShareDir holds the package's data: sabakan's configuration
	// template, Ignition templates, images, assets, dhcp.json.
	ShareDir string
	// SabakanConfig is the sabakan configuration file the sabakan-config
	// step renders.
	SabakanConfig string
	// SabakanURL is sabakan's REST API, where the sabakan-contents step
	// uploads.
	SabakanURL string
	// RegistryConfig is the neco-registry configuration file the
	// registry-config step renders (default
	// bootserver.RegistryConfigFile).
	RegistryConfig string
	// RegistryHealthURL is neco-registry's /health, which the
	// registry-config step waits for (default bootserver.RegistryHealthURL).
	RegistryHealthURL string
	// Services restarts and inspects units (default: systemd).
	Services ServiceManager
	// CKE is the Kubernetes engine's storage (/cke/), which has the
	// engine's SSH key for the nodes' Ignition.
	CKE *ckestorage.Storage
}

// BootServerSteps are the update steps of a boot server, in order: etcd
// (membership and restart), vault (restart and unseal, after etcd's
// restarts since Vault keeps its data in etcd), sabakan-config (with
// sabakan's etcd user and this server's certificate for it made first,
// and sabakan serving before the next step), registry-config (with the
// registry's TLS certificate issued first when missing or expiring, and
// the registry healthy before the next step), registry-images (the
// release's images pushed into this server's registry), sabakan-contents,
// cke-template (the release's cluster.yml template for the Kubernetes
// engine) and the final barrier. client is etcd as root, scoped to /neco/.
func BootServerSteps(client *clientv3.Client, cfg BootServerConfig) ([]Step, error) {
	cluster, err := bootserver.LoadCluster(cfg.ClusterFile, true)
	if err != nil {
		return nil, err
	}
	me, err := cluster.Lookup(cfg.LRN)
	if err != nil {
		return nil, err
	}
	peerURL := func(lrn int) string {
		s, err := cluster.Lookup(lrn)
		if err != nil {
			return ""
		}
		return cluster.EtcdPeerURL(s)
	}
	sc, err := sabakanclient.New(cfg.SabakanURL)
	if err != nil {
		return nil, err
	}
	svc := cfg.Services
	if svc == nil {
		svc = &services.Systemd{}
	}
	paths := bootserver.NewPaths(cfg.Root)
	vc, err := bootserver.NewVaultClient(cluster.VaultURL(me), paths)
	if err != nil {
		return nil, err
	}
	return []Step{
		EtcdStep(client.Cluster,
			ServiceEtcd{Services: svc, Maintenance: client.Maintenance, Endpoint: cluster.EtcdClientURL(me)}, peerURL),
		// Vault keeps its data in etcd: after etcd's restarts.
		VaultStep(ServiceVault{Services: svc, API: vc}),
		// Before sabakan first starts on this server: its etcd user and
		// this server's certificate for it (neco init / init-local).
		// After a restart: serving, for the uploads of the next step.
		WithHooks(
			ServiceConfigStep("sabakan-config", "sabakan", cfg.SabakanConfig, TemplateFile(filepath.Join(cfg.ShareDir, "sabakan.yml"), me.Address), svc),
			func(ctx context.Context, _ *StepEnv) error {
				issued, err := bootserver.EnsureService(ctx, client, cluster, me, paths, "sabakan")
				if issued {
					slog.Info("issued sabakan's etcd certificate for this boot server")
				}
				return err
			},
			WaitHealthy(strings.TrimSuffix(cfg.SabakanURL, "/")+"/health")),
		// The registry serving, with its certificate, before the
		// contents name it to the nodes.
		RegistryConfigStep(cfg, cluster, me, svc),
		// The release's images in this server's registry before the
		// nodes are told of the release.
		RegistryImagesStep(filepath.Join(cfg.ShareDir, "registry"), bootserver.RegistryWriteAddr),
		SabakanContentsStep(cfg.ShareDir, SabakanUploader{Client: sc}, func(ctx context.Context, e *StepEnv) (map[string]any, error) {
			return IgnitionMeta(ctx, e.Storage, cfg.CKE, cluster, paths.ServerCA, bootserver.RegistryPort)
		}),
		CKETemplateStep(filepath.Join(cfg.ShareDir, CKETemplateFile), cfg.CKE),
		FinalStep(),
	}, nil
}

// RegistryConfigStep keeps neco-registry (docs/registry.md) at the
// requested version: before the configuration, this server's registry
// certificate (issued from Vault when missing, expiring within
// bootserver.RegistryRenewBefore or naming another address); after a
// restart, the registry healthy, so that a next step can push to it.
func RegistryConfigStep(cfg BootServerConfig, cluster *bootserver.Cluster, me bootserver.Server, svc ServiceManager) Step {
	path := cmp.Or(cfg.RegistryConfig, bootserver.RegistryConfigFile)
	health := cmp.Or(cfg.RegistryHealthURL, bootserver.RegistryHealthURL)
	paths := bootserver.NewPaths(cfg.Root)
	return WithHooks(
		ServiceConfigStep("registry-config", "neco-registry", path, TemplateFile(filepath.Join(cfg.ShareDir, "neco-registry.yml"), me.Address), svc),
		func(ctx context.Context, _ *StepEnv) error {
			issued, err := bootserver.EnsureRegistryCert(ctx, cluster, me, paths)
			if issued {
				slog.Info("issued the registry's TLS certificate for this boot server", "file", paths.RegistryCert)
			}
			return err
		},
		WaitHealthy(health))
}
