package agent

import (
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/bgp/netconf"
	"github.com/openneco/neco/pkg/config"
)

// Config is the agent's configuration: a YAML file (-config) whose keys are
// the json tags below, with command-line flags winning over it.
type Config struct {
	// SabakanURL is the base URL of sabakan's REST API, where the agent
	// learns its machine and the IPAM configuration.
	SabakanURL string `json:"sabakan-url"`
	// IdentityFile replaces sabakan, for boot servers set up before
	// sabakan runs: a bgp.Source (machine and ipam) in YAML or JSON.
	IdentityFile string `json:"identity-file"`
	// Serial overrides the serial read from SerialFile.
	Serial     string `json:"serial"`
	SerialFile string `json:"serial-file"`

	// StateDir holds BIRD's configuration, socket, PID file and log, and
	// the cached identity.
	StateDir string `json:"state-dir"`

	// Interfaces are the NICs towards ToR 1 and ToR 2.
	Interfaces []string `json:"interfaces"`
	// MTU of both NICs; 0 leaves it alone.
	MTU int `json:"mtu"`
	// Node0Kind is the link type of node0 and the virtual addresses: auto
	// (dummy, or ifb where the kernel lacks dummy), dummy or ifb.
	Node0Kind string `json:"node0-kind"`
	// VirtualAddresses are extra advertised /32s (boot servers).
	VirtualAddresses []bgp.VirtualAddress `json:"virtual-addresses"`
	// PodTable is the kernel table of pod routes to advertise; 0 is off.
	PodTable int `json:"pod-table"`
	// RPFilter turns on strict reverse-path filtering on the NICs once the
	// network is ready.
	RPFilter bool `json:"rp-filter"`

	AS     bgp.ASPlan `json:"as"`
	Timers bgp.Timers `json:"timers"`

	// BIRD is the BIRD executable.
	BIRD string `json:"bird"`
	// BIRDExtra is a file of BIRD configuration appended to the generated
	// one (local peerings, for example).
	BIRDExtra string `json:"bird-extra"`
	// BIRDRealtime runs BIRD with real-time priority and OOM protection.
	BIRDRealtime bool `json:"bird-realtime"`
	// BIRDLogSize rotates BIRD's log at this many bytes.
	BIRDLogSize int64 `json:"bird-log-size"`
	// GracefulRestart makes a BIRD restart lose no traffic: BGP graceful
	// restart towards the ToRs, and a BIRD that died leaving its routes in
	// the kernel is started again with graceful restart recovery.
	GracefulRestart bool `json:"graceful-restart"`

	// Listen is the address of /health, /status and /metrics.
	Listen string `json:"listen"`
	// PollInterval is how often readiness and metrics are refreshed.
	PollInterval bgp.Duration `json:"poll-interval"`
	// ReconcileInterval is how often links and BIRD's configuration are
	// made true again.
	ReconcileInterval bgp.Duration `json:"reconcile-interval"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		SerialFile:        "/sys/class/dmi/id/product_serial",
		StateDir:          "/var/lib/bgp-node-agent",
		Interfaces:        []string{"eth0", "eth1"},
		Node0Kind:         string(netconf.KindAuto),
		PodTable:          bgp.DefaultPodTable,
		RPFilter:          true,
		AS:                bgp.DefaultASPlan(),
		Timers:            bgp.FastTimers(),
		BIRD:              "bird",
		BIRDRealtime:      true,
		BIRDLogSize:       8 << 20,
		GracefulRestart:   true,
		Listen:            ":9770",
		PollInterval:      bgp.Duration(time.Second),
		ReconcileInterval: bgp.Duration(10 * time.Second),
	}
}

// AddFlags binds the configuration's most used settings to fs; the rest are
// set in the file. The -config flag itself is the caller's.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.SabakanURL, "sabakan-url", c.SabakanURL, "base `URL` of sabakan's REST API (the inventory the node's identity comes from)")
	fs.StringVar(&c.IdentityFile, "identity-file", c.IdentityFile, "read the machine and IPAM config from this YAML/JSON `file` instead of sabakan (boot servers)")
	fs.StringVar(&c.Serial, "serial", c.Serial, "machine serial (default: read from -serial-file)")
	fs.StringVar(&c.SerialFile, "serial-file", c.SerialFile, "`file` holding the machine serial (SMBIOS)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "`directory` for BIRD's config, socket, PID file, log and the cached identity")
	fs.Var(config.CommaList(&c.Interfaces), "interfaces", "the two NICs towards ToR 1 and ToR 2, comma separated")
	fs.IntVar(&c.MTU, "mtu", c.MTU, "MTU of both NICs (0: leave alone)")
	fs.StringVar(&c.Node0Kind, "node0-kind", c.Node0Kind, "link type of node0: auto (dummy, ifb where the kernel lacks dummy), dummy or ifb")
	fs.IntVar(&c.PodTable, "pod-table", c.PodTable, "kernel routing table of pod routes to advertise (0: off)")
	fs.BoolVar(&c.RPFilter, "rp-filter", c.RPFilter, "set rp_filter=1 on the NICs once the network is ready")
	fs.StringVar(&c.BIRD, "bird", c.BIRD, "BIRD 2 `executable`")
	fs.StringVar(&c.BIRDExtra, "bird-extra", c.BIRDExtra, "`file` of BIRD configuration appended to the generated one")
	fs.BoolVar(&c.BIRDRealtime, "bird-realtime", c.BIRDRealtime, "run BIRD with real-time priority and OOM protection")
	fs.Var(&c.Timers.BFDInterval, "bfd-interval", "BFD transmit and receive interval")
	fs.IntVar(&c.Timers.BFDMultiplier, "bfd-multiplier", c.Timers.BFDMultiplier, "BFD detection multiplier (missed intervals that mean down)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` of /health, /status and /metrics")
	fs.Var(&c.PollInterval, "poll-interval", "how often readiness and metrics are refreshed")
	fs.Var(&c.ReconcileInterval, "reconcile-interval", "how often links and BIRD's configuration are made true again")
}

// Validate checks the settings that do not depend on the identity.
func (c *Config) Validate() error {
	if c.SabakanURL == "" && c.IdentityFile == "" {
		return fmt.Errorf("%w: set sabakan-url or identity-file", bgp.ErrInvalidSettings)
	}
	if len(c.Interfaces) != 2 {
		return fmt.Errorf("%w: interfaces must name exactly two NICs, got %q", bgp.ErrInvalidSettings, c.Interfaces)
	}
	if _, err := netconf.ParseKind(c.Node0Kind); err != nil {
		return fmt.Errorf("%w: %v", bgp.ErrInvalidSettings, err)
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("%w: state-dir %q must be an absolute path", bgp.ErrInvalidSettings, c.StateDir)
	}
	if c.PollInterval.D() < 10*time.Millisecond || c.ReconcileInterval.D() < c.PollInterval.D() {
		return fmt.Errorf("%w: poll-interval must be at least 10ms and reconcile-interval at least poll-interval", bgp.ErrInvalidSettings)
	}
	return c.Timers.Validate()
}

// Paths of the files in the state directory.
func (c *Config) birdConfig() string  { return filepath.Join(c.StateDir, "bird.conf") }
func (c *Config) birdSocket() string  { return filepath.Join(c.StateDir, "bird.ctl") }
func (c *Config) birdPIDFile() string { return filepath.Join(c.StateDir, "bird.pid") }
func (c *Config) birdLog() string     { return filepath.Join(c.StateDir, "bird.log") }
func (c *Config) birdOutput() string  { return filepath.Join(c.StateDir, "bird.out") }
func (c *Config) identityCache() string {
	return filepath.Join(c.StateDir, "identity.json")
}
