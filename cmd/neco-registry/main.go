// Command neco-registry is the OCI distribution registry of a boot server:
// read-only over TLS for the nodes, writable on loopback for the boot
// server's neco-worker. See docs/registry.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/registry"
)

func main() {
	cfg := registry.NewConfig()
	configFile := flag.String("config-file", "", "path to a YAML configuration file; flags given explicitly override it")
	cfg.AddFlags(flag.CommandLine)
	flag.Parse()
	if err := config.Load(flag.CommandLine, *configFile, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "neco-registry:", err)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "neco-registry:", err)
		os.Exit(2)
	}
	// No load balancer stands in front: on SIGTERM it stops accepting at
	// once and drains the requests in flight.
	daemon.Run(func(ctx context.Context) error { return registry.Run(ctx, cfg) }, daemon.NoCancellationDelay())
}
