// Command neco-updater follows neco releases on GitHub and requests updates
// of the boot servers; one instance per boot server, one leader at a time.
// See docs/cd.md.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/updater"
)

func main() {
	load := storage.AddFlags(flag.CommandLine)
	listen := flag.String("listen", "127.0.0.1:10090", "address of /health and /metrics")
	name := flag.String("name", "", "name in the leader election (default: host name)")
	flag.Parse()

	daemon.Run(func(ctx context.Context) error {
		cfg, err := load()
		if err != nil {
			return err
		}
		client, err := etcdutil.New(cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		if *name == "" {
			*name, _ = os.Hostname()
		}
		reg := daemon.NewRegistry()
		st := storage.New(client)
		health := func(ctx context.Context) error { _, err := st.Snapshot(ctx); return err }
		if _, err := (daemon.Server{Addr: *listen, Handler: daemon.MetricsMux(reg, health)}).Start(nil); err != nil {
			return err
		}
		u := &updater.Updater{Storage: st, Name: *name, Metrics: updater.NewMetrics(reg)}
		return u.Run(ctx)
	})
}
