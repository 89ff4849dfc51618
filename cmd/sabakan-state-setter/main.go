// Command sabakan-state-setter runs on every boot server; one of them, elected
// through etcd, turns what the failure detector sees into machine states in
// sabakan, and repairs machines that stay failed by power-cycling them once.
// See docs/membership.md and docs/repair.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/repair"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/statesetter"
)

func main() {
	loadEtcd := storage.AddFlags(flag.CommandLine)
	sabakanURL := flag.String("sabakan-url", "http://127.0.0.1:10080", "sabakan's REST API")
	membersURL := flag.String("members-url", "http://127.0.0.1:7947", "the local node-health-agent")
	interval := flag.Duration("interval", 10*time.Second, "time between decision rounds")
	grace := flag.Duration("grace-period", time.Minute, "how long a machine must look unhealthy before it is marked unhealthy")
	metrics := flag.String("metrics", "127.0.0.1:10083", "address of /health and /metrics")
	repairInterval := flag.Duration("repair-interval", 10*time.Second, "time between rounds of the repair loop (neco config repair-* sets the rest)")
	flag.Parse()
	etcdCfg, err := loadEtcd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	host, _ := os.Hostname()
	sc, err := client.New(*sabakanURL, client.WithUser("sabakan-state-setter"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	audit, err := client.New(*sabakanURL, client.WithUser("neco-repair"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	setter := &statesetter.Setter{
		Inventory:   statesetter.SabakanInventory{Client: sc},
		Members:     &membership.Client{URL: *membersURL},
		Interval:    *interval,
		GracePeriod: *grace,
	}

	daemon.Run(func(ctx context.Context) error {
		etcd, err := etcdutil.New(etcdCfg)
		if err != nil {
			return err
		}
		defer etcd.Close()
		st := storage.New(etcd)
		repairer := &repair.Repairer{Inventory: setter.Inventory, Power: repair.BMCPower{Storage: st},
			Audit: repair.SabakanAudit{Client: audit}, Settings: repair.StoredSettings(st), Interval: *repairInterval}
		reg := daemon.NewRegistry()
		setter.Register(reg)
		repairer.Register(reg)
		health := st.Ping
		if _, err := (daemon.Server{Addr: *metrics, Handler: daemon.MetricsMux(reg, health)}).Start(nil); err != nil {
			return err
		}
		return statesetter.RunAsLeader(ctx, etcd, host, setter, func(ctx context.Context, leaderKey string) {
			r := *repairer
			r.Store = repair.EtcdStore{Storage: st, LeaderKey: leaderKey}
			r.Run(ctx)
		})
	})
}
