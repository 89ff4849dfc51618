// Command bgp-node-agent runs on every node and boot server: it gives the
// machine its node address (node0, a /32 reachable while either uplink is
// up), configures both uplinks, runs BIRD with iBGP and BFD to the two
// top-of-rack switches, installs their routes as ECMP, advertises pod routes,
// and reports readiness. See docs/bgp-agent.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/openneco/neco/pkg/bgp/agent"
	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/version"
)

func main() {
	cfg := agent.DefaultConfig()
	configFile := flag.String("config", "", "YAML configuration `file`; flags given on the command line win over it")
	showVersion := flag.Bool("version", false, "print the version and exit")
	cfg.AddFlags(flag.CommandLine)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `Usage: bgp-node-agent [flags]

Configures this machine's node address and uplinks and runs BIRD with BGP
and BFD to both top-of-rack switches. Its identity (addresses, rack, AS)
comes from sabakan (-sabakan-url) or from a file (-identity-file).
Serves /health (200 when ready), /status (JSON) and /metrics on -listen.
BIRD keeps running when the agent stops. See docs/bgp-agent.md.

Flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if err := config.Load(flag.CommandLine, *configFile, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bgp-node-agent:", err)
		os.Exit(2)
	}
	daemon.Run(func(ctx context.Context) error {
		a := agent.New(cfg, daemon.NewRegistry(), slog.Default())
		if _, err := (daemon.Server{Addr: cfg.Listen, Handler: a.Handler()}).Start(nil); err != nil {
			return err
		}
		return a.Run(ctx)
	})
}
