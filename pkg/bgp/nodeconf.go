package bgp

import (
	"bytes"
	_ "embed"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Node0 is the name of the interface that holds the node address.
const Node0 = "node0"

// DefaultPodTable is the kernel routing table the CNI writes pod routes to.
const DefaultPodTable = 119

// StaleTime is how long the ToRs keep the routes of a node whose BIRD
// vanished (long-lived graceful restart): the agent restarts BIRD within
// 30 s even while it keeps failing, and the routes are only a last resort
// meanwhile, so a node that is really gone costs nothing but a route.
const StaleTime = 120 * time.Second

// RecoveryWait bounds the graceful restart recovery of a restarted BIRD:
// the time it waits for End-of-RIB from both ToRs before it updates the
// kernel and the ToRs anyway (one ToR may be down). Sessions come back in
// about 1 s.
const RecoveryWait = 10 * time.Second

// VirtualAddress is an extra /32 a node (a boot server) advertises, held by
// an interface of its own that works like node0.
type VirtualAddress struct {
	// Name is the interface name, for example "bastion" or "boot".
	Name string `json:"name"`
	// Address is the /32 address.
	Address netip.Addr `json:"address"`
}

// NodeConfig is everything the node's BIRD configuration depends on.
type NodeConfig struct {
	ID *Identity
	// Interfaces are the NICs towards ToR 1 and ToR 2.
	Interfaces [2]string
	// Virtual are extra advertised addresses (boot servers).
	Virtual []VirtualAddress
	// PodTable is the kernel table whose routes are advertised; 0 turns
	// pod routes off.
	PodTable int
	Timers   Timers
	// LogFile is where BIRD logs, rotated at LogSize bytes into LogFile.1;
	// "" logs to syslog.
	LogFile string
	LogSize int64
	// Extra is BIRD configuration appended verbatim (the operator's
	// bird-extra file).
	Extra string
	// GracefulRestart lets the node's BIRD restart without taking its
	// routes away: the ToRs keep them (BGP graceful restart), and so does
	// the kernel when BIRD is started again with -R (see
	// docs/bgp-agent.md).
	GracefulRestart bool
}

var reIfName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)

// ValidInterfaceName reports whether name is a usable Linux interface name
// (at most 15 characters, no slashes, spaces or quotes).
func ValidInterfaceName(name string) bool { return reIfName.MatchString(name) }

// Validate checks the parts of c that are not the identity.
func (c *NodeConfig) Validate() error {
	if c.ID == nil {
		return fmt.Errorf("%w: no identity", ErrInvalidSettings)
	}
	seen := map[string]bool{Node0: true}
	for _, n := range c.Interfaces {
		if !ValidInterfaceName(n) || seen[n] {
			return fmt.Errorf("%w: interface name %q is invalid or used twice", ErrInvalidSettings, n)
		}
		seen[n] = true
	}
	addrs := map[netip.Addr]bool{c.ID.Node: true}
	for _, v := range c.Virtual {
		if !ValidInterfaceName(v.Name) || seen[v.Name] {
			return fmt.Errorf("%w: virtual address interface name %q is invalid or used twice", ErrInvalidSettings, v.Name)
		}
		seen[v.Name] = true
		if !v.Address.Is4() || addrs[v.Address] {
			return fmt.Errorf("%w: virtual address %q of %s is not a distinct IPv4 address", ErrInvalidSettings, v.Address, v.Name)
		}
		addrs[v.Address] = true
	}
	if c.PodTable < 0 || c.PodTable == 253 || c.PodTable == 254 || c.PodTable == 255 {
		return fmt.Errorf("%w: pod table %d must be 0 (off) or a table other than default, main and local", ErrInvalidSettings, c.PodTable)
	}
	if strings.ContainsAny(c.LogFile, "\"\n") {
		return fmt.Errorf("%w: log file name %q contains a quote or newline", ErrInvalidSettings, c.LogFile)
	}
	if c.LogFile != "" && c.LogSize < 4096 {
		return fmt.Errorf("%w: log size %d is below 4096 bytes", ErrInvalidSettings, c.LogSize)
	}
	return c.Timers.Validate()
}

//go:embed node.conf.tmpl
var nodeTemplateText string

var nodeTemplate = template.Must(template.New("node").Parse(nodeTemplateText))

// RenderNode returns the node's complete BIRD configuration: the node
// address (and virtual addresses) advertised to both ToRs over iBGP with
// BFD, routes from the ToRs installed as ECMP in the main table, and the
// pod routes of the CNI's kernel table advertised too.
func RenderNode(c *NodeConfig) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	direct := []string{`"` + Node0 + `"`}
	for _, v := range c.Virtual {
		direct = append(direct, `"`+v.Name+`"`)
	}
	var b bytes.Buffer
	err := nodeTemplate.Execute(&b, struct {
		*NodeConfig
		DirectInterfaces string
		Mask             int
		StaleTime        int64
		RecoveryWait     int64
	}{c, strings.Join(direct, ", "), c.ID.Links[0].Address.Bits(), seconds(Duration(StaleTime)), seconds(Duration(RecoveryWait))})
	if err != nil {
		return nil, fmt.Errorf("bgp: render node configuration: %w", err)
	}
	return b.Bytes(), nil
}
