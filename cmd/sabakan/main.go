// Command sabakan is the boot server: machine inventory with IPAM and
// life-cycle, disk encryption keys, audit log, REST and GraphQL API. See
// docs/sabakan-api.md; flags and configuration keys are those of the
// reference boot server (sabakan -h).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/sabakan/netboot"
	"github.com/openneco/neco/pkg/sabakan/server"
)

func main() {
	cfg := server.NewConfig()
	configFile := flag.String("config-file", "", "path to a YAML configuration file; flags given explicitly override it")
	cfg.AddFlags(flag.CommandLine)
	flag.Parse()
	if err := config.Load(flag.CommandLine, *configFile, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "sabakan:", err)
		os.Exit(2)
	}
	// No load balancer stands in front of sabakan: on SIGTERM it stops
	// accepting at once and drains the requests in flight.
	daemon.Run(func(ctx context.Context) error { return server.Run(ctx, cfg, netboot.Extension) }, daemon.NoCancellationDelay())
}
