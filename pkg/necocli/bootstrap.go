package necocli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/services"
)

// addBootstrapCommands adds the commands of bootstrap: setup, join, leave,
// init, init-local, init-data, vault and certs.
func addBootstrapCommands(root *cobra.Command, g *globalOptions) {
	root.AddCommand(
		newSetupCommand(g), newJoinCommand(g), newLeaveCommand(g),
		newInitCommand(g), newInitLocalCommand(g), newInitDataCommand(g),
		newVaultCommand(g), newCertsCommand(g),
	)
}

// bootOptions are the flags every bootstrap command shares.
type bootOptions struct {
	g           *globalOptions
	root        string
	clusterFile string
	serviceMgr  string
	lrn         int
}

func (b *bootOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&b.root, "root", "/", "directory all of this boot server's files live under (for tests and simulated boot servers)")
	cmd.Flags().StringVar(&b.clusterFile, "cluster", "", "cluster description: boot server addresses and ports (default <root>/etc/neco/cluster.yml if present, else the reference address plan)")
	cmd.Flags().StringVar(&b.serviceMgr, "service-manager", "", "how daemons are run: systemd, or process where PID 1 is not systemd (default: systemd when it runs)")
	cmd.Flags().IntVar(&b.lrn, "lrn", -1, "this boot server's LRN (default: the server whose address is on a local interface)")
	cmd.RegisterFlagCompletionFunc("service-manager", cobra.FixedCompletions([]string{"systemd", "process"}, cobra.ShellCompDirectiveNoFileComp))
}

func (b *bootOptions) paths() bootserver.Paths { return bootserver.NewPaths(b.root) }

func (b *bootOptions) cluster() (*bootserver.Cluster, error) {
	if b.clusterFile != "" {
		return bootserver.LoadCluster(b.clusterFile, false)
	}
	return bootserver.LoadCluster(b.paths().ClusterDef, true)
}

func (b *bootOptions) services() (services.Manager, error) {
	return services.New(b.serviceMgr, b.paths().ServicesDir)
}

// me finds this server among servers.
func (b *bootOptions) me(servers []bootserver.Server) (bootserver.Server, error) {
	lrn := b.lrn
	if lrn < 0 {
		var err error
		if lrn, err = bootserver.LocalLRN(servers); err != nil {
			return bootserver.Server{}, err
		}
	}
	for _, s := range servers {
		if s.LRN == lrn {
			return s, nil
		}
	}
	return bootserver.Server{}, fmt.Errorf("--lrn %d is not among the boot servers", lrn)
}

// local is what commands run on a set-up boot server know about it.
type local struct {
	paths   bootserver.Paths
	cluster *bootserver.Cluster
	servers []bootserver.Server
	me      bootserver.Server
}

// loadLocal reads the state setup left: the cluster description with every
// boot server, the LRN, and checks the client certificate.
func (b *bootOptions) loadLocal() (*local, error) {
	p := b.paths()
	if err := bootserver.CheckClientCert(p); err != nil {
		return nil, err
	}
	c, err := b.cluster()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p.Rack)
	if err != nil {
		return nil, fmt.Errorf("read %s (is this boot server set up?): %w", p.Rack, err)
	}
	lrn, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Rack, err)
	}
	me, err := c.Lookup(lrn)
	if err != nil {
		return nil, err
	}
	return &local{paths: p, cluster: c, servers: c.Servers, me: me}, nil
}

// etcd connects as root with this server's certificate, scoped to /neco/.
func (l *local) etcd() (*clientv3.Client, error) {
	return etcdutil.New(bootserver.EtcdConfig(l.cluster, l.servers, l.paths, storage.DefaultPrefix))
}

// ckeEtcd connects to the Kubernetes engine's keys (/cke/).
func (l *local) ckeEtcd() (*clientv3.Client, error) {
	return etcdutil.New(bootserver.EtcdConfig(l.cluster, l.servers, l.paths, ckestorage.DefaultPrefix))
}

// connect loads this boot server's setup and connects to etcd with it.
func (b *bootOptions) connect() (*local, *clientv3.Client, error) {
	l, err := b.loadLocal()
	if err != nil {
		return nil, nil, err
	}
	client, err := l.etcd()
	if err != nil {
		return nil, nil, err
	}
	return l, client, nil
}

func readToken(file, env string) ([]byte, error) {
	if file == "" {
		if v := os.Getenv(env); v != "" {
			return []byte(strings.TrimSpace(v)), nil
		}
		return nil, fmt.Errorf("no token: pass the token file with its flag, or set %s", env)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("the token file is readable by others; chmod 600 it", "file", file)
	}
	return []byte(strings.TrimSpace(string(data))), nil
}

func logger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// meFromRack is this server per the rack file setup wrote.
func (b *bootOptions) meFromRack(c *bootserver.Cluster) (bootserver.Server, error) {
	data, err := os.ReadFile(b.paths().Rack)
	if err != nil {
		return bootserver.Server{}, fmt.Errorf("read %s (is this boot server set up?): %w", b.paths().Rack, err)
	}
	lrn, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return bootserver.Server{}, err
	}
	return c.Lookup(lrn)
}
