// Command node-health-agent runs on every node and boot server: it joins the
// data center's serf cluster, publishes the machine's serial and failed
// systemd units (on an OS without systemd, what -health-command reports) as
// tags, and serves the member list, /health and /metrics.
// See docs/membership.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/membership"
)

func main() {
	cfg := membership.Config{}
	flag.StringVar(&cfg.NodeName, "node-name", "", "unique member name (default: host name)")
	flag.StringVar(&cfg.Bind, "bind", fmt.Sprintf("0.0.0.0:%d", membership.DefaultPort), "gossip address host:port (TCP and UDP)")
	flag.StringVar(&cfg.Advertise, "advertise", "", "address other members reach this one at; set it to the node address when binding 0.0.0.0")
	flag.Var(config.CommaList(&cfg.Join), "join", "comma-separated members to join, usually the boot servers")
	flag.StringVar(&cfg.Serial, "serial", "", "machine serial to publish (default: the SMBIOS product serial)")
	flag.DurationVar(&cfg.CheckInterval, "check-interval", 10*time.Second, "how often failed systemd units are checked")
	flag.StringVar(&cfg.Profile, "profile", "lan", "failure detection timing: lan (data center) or local (tests)")
	listen := flag.String("listen", "127.0.0.1:7947", "address of /members, /health and /metrics")
	healthCommand := flag.String("health-command", "", "for an OS without systemd: `executable` run instead of systemctl at every check; each line it prints names a failed service, a non-zero exit is a failed check")
	flag.Parse()
	if cfg.Serial == "" {
		data, _ := os.ReadFile("/sys/class/dmi/id/product_serial")
		cfg.Serial = strings.TrimSpace(string(data))
	}

	var health membership.Health = membership.SystemdHealth{}
	if *healthCommand != "" {
		health = membership.CommandHealth{Path: *healthCommand}
	}

	daemon.Run(func(ctx context.Context) error {
		agent, err := membership.Start(ctx, cfg, health)
		if err != nil {
			return err
		}
		mux := daemon.MetricsMux(daemon.NewRegistry(), func(context.Context) error { return nil })
		mux.Handle("GET /members", agent.MembersHandler())
		if _, err := (daemon.Server{Addr: *listen, Handler: mux}).Start(nil); err != nil {
			return err
		}
		return agent.Run(ctx)
	})
}
