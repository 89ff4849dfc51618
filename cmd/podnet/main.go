// Command podnet is the data center's pod network. Run by a container
// runtime with CNI_COMMAND set, it is the CNI plugin and forwards the
// command to the node daemon; "podnet daemon" is that daemon (the engine
// runs it on every node as cke-podnet.service). See docs/podnet.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/openneco/neco/pkg/podnet/agent"
	"github.com/openneco/neco/pkg/podnet/cni"
	"github.com/openneco/neco/pkg/podnet/nodenet"
	"github.com/openneco/neco/pkg/version"
)

const usage = `usage: podnet daemon [flags]   the node daemon (podnet daemon -h lists its flags)
       podnet version          print the version
Run with CNI_COMMAND set, podnet is the CNI plugin.
`

func main() {
	if os.Getenv("CNI_COMMAND") != "" {
		cni.Main(version.Version)
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version":
		fmt.Println(version.Version)
		return
	case "daemon":
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "podnet: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	os.Args = append(os.Args[:1], os.Args[2:]...)

	def := nodenet.DefaultConfig()
	cfg := agent.Config{Net: def}
	flag.StringVar(&cfg.NodeName, "node-name", "", "this node's Kubernetes name (required)")
	nodeIP := flag.String("node-ip", "", "this node's address, the pods' gateway (required)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig reaching the API (required)")
	flag.StringVar(&cfg.Socket, "socket", cni.DefaultSocket, "unix socket the CNI plugin reaches the daemon at")
	flag.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "/usr/lib/cni", "where the daemon installs the plugin (empty: not installed)")
	flag.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "where the daemon writes "+agent.ConfFile+" once it serves (empty: not written)")
	flag.IntVar(&cfg.Net.PodTable, "pod-table", def.PodTable, "kernel table of the per-pod /32 routes")
	flag.IntVar(&cfg.Net.RulePriority, "rule-priority", def.RulePriority, "priority of the rule looking up -pod-table")
	flag.IntVar(&cfg.Net.ExportTable, "export-table", def.ExportTable, "kernel table of the block routes the BGP agent announces")
	flag.IntVar(&cfg.Net.Protocol, "protocol", def.Protocol, "route protocol id of every route the daemon writes")
	flag.IntVar(&cfg.Net.MTU, "mtu", 0, "MTU of the pods' links (0: the smallest MTU of the node's links)")
	flag.DurationVar(&cfg.Resync, "resync", time.Minute, "period of the full reconciliation of blocks, routes and links")
	metrics := flag.String("metrics-address", "127.0.0.1:9384", "address of /health and /metrics")
	flag.Parse()

	err := func() error {
		if cfg.NodeName == "" || *kubeconfig == "" {
			return fmt.Errorf("-node-name and -kubeconfig are required")
		}
		ip, err := netip.ParseAddr(*nodeIP)
		if err != nil || !ip.Is4() {
			return fmt.Errorf("-node-ip %q: not an IPv4 address", *nodeIP)
		}
		cfg.Net.NodeIP = ip
		if cfg.Net.MTU == 0 {
			if cfg.Net.MTU, err = nodenet.DetectMTU(); err != nil {
				return err
			}
		}
		kc, err := kubeapi.LoadKubeconfig(*kubeconfig)
		if err != nil {
			return err
		}
		if cfg.Kube, err = kubeapi.New(kc); err != nil {
			return err
		}
		cfg.Executable, err = os.Executable()
		return err
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "podnet:", err)
		os.Exit(2)
	}

	daemon.Run(func(ctx context.Context) error {
		a := agent.New(cfg)
		reg := daemon.NewRegistry()
		a.Register(reg)
		if _, err := (daemon.Server{Addr: *metrics, Handler: daemon.MetricsMux(reg, a.Health)}).Start(nil); err != nil {
			return err
		}
		return a.Run(ctx)
	}, daemon.NoCancellationDelay())
}
