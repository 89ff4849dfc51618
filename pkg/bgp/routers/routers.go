// Package routers generates the router side of a leaf-spine test network
// from the IPAM configuration and a rack list: every router (two ToRs per
// rack, the spines, the core), its interfaces and addresses, its complete
// BIRD configuration, the links between routers, the node subnets, and the
// DHCP relay each ToR runs towards the boot servers.
//
// The generated network is the one the BGP node agent expects: rack r is
// AS 64600+r and its ToRs are iBGP route reflectors for the rack's nodes
// (dynamic neighbors over the ToR's whole node subnet, BFD on every
// session); every ToR has an eBGP session with every spine (AS 64599); the
// spines have one with the core (AS 64597), which originates the default
// route. Equal routes become ECMP routes in every router's kernel.
//
// Generate only describes; building namespaces, links and processes is the
// caller's job (pkg/bgp/fabrictest for the agent's tests, the virtual data
// center for the rest). See docs/bgp-agent.md, "Router configurations".
package routers

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/sabakan"
)

// ErrInvalid is returned for a configuration that cannot make a network.
var ErrInvalid = errors.New("routers: invalid configuration")

// Role is what a router does.
type Role string

// Router roles.
const (
	ToR   Role = "tor"
	Spine Role = "spine"
	Core  Role = "core"
)

// DefaultLinkPool holds the /31 point-to-point links between routers.
var DefaultLinkPool = netip.MustParsePrefix("10.0.0.0/24")

// Config describes the network to generate.
type Config struct {
	// IPAM is sabakan's address plan; node subnets and ToR addresses follow
	// from it (ToR t of rack r is the gateway of link t's sub-range).
	IPAM *sabakan.IPAMConfig
	// Racks are the rack numbers, each below IPAM.MaxRacks().
	Racks []uint
	// Spines is the number of spine switches (at least 1).
	Spines int
	// LinkPool holds the /31 links between ToRs, spines and the core; the
	// zero value means DefaultLinkPool. It must not overlap the node pool.
	LinkPool netip.Prefix
	// AS numbers the routers; the zero value means bgp.DefaultASPlan().
	AS bgp.ASPlan
	// Timers for every router; the zero value means bgp.FastTimers().
	Timers bgp.Timers
	// DHCPServers are where the ToRs relay DHCP to; nil means the node
	// address of each rack's boot server (index node-index-offset).
	DHCPServers []netip.Addr
	// DefaultGateway, if valid, is the core's next hop for the default
	// route; otherwise the core's default route is a blackhole, so the
	// network leads nowhere outside.
	DefaultGateway netip.Addr
}

// Interface is one of a router's interfaces.
type Interface struct {
	// Name is the interface name inside the router (at most 15 bytes).
	Name string
	// Address is the router's address with the subnet's length.
	Address netip.Prefix
	// Peer and PeerInterface name the other end of a point-to-point link;
	// both are empty on a ToR's node segment.
	Peer          string
	PeerInterface string
}

// Relay is a ToR's DHCP relay towards the boot servers.
type Relay struct {
	// Interface and Address are where node requests arrive; Address is the
	// giaddr the boot servers answer to.
	Interface string
	Address   netip.Addr
	Servers   []netip.Addr
}

// DnsmasqArgs returns the arguments of a dnsmasq that only relays DHCP
// (no DNS, no DHCP service of its own), in the foreground.
func (r *Relay) DnsmasqArgs(pidFile string) []string {
	args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=0",
		"--conf-file=/dev/null", "--log-facility=-", "--pid-file=" + pidFile, "--interface=" + r.Interface}
	for _, s := range r.Servers {
		args = append(args, "--dhcp-relay="+r.Address.String()+","+s.String())
	}
	return args
}

// Router is one generated router.
type Router struct {
	// Name is unique in the fabric: "rack0-tor1", "spine1", "core".
	Name string
	Role Role
	// Rack and ToR (1 or 2) of a ToR.
	Rack uint
	ToR  int
	AS   uint32
	// RouterID is BIRD's router id: the router's first address.
	RouterID   netip.Addr
	Interfaces []Interface
	// BIRD is the router's complete BIRD configuration. It logs to stderr.
	BIRD []byte
	// Relay is the DHCP relay of a ToR; nil for other roles.
	Relay *Relay
}

// Interface returns the named interface, or nil.
func (r *Router) Interface(name string) *Interface {
	for i := range r.Interfaces {
		if r.Interfaces[i].Name == name {
			return &r.Interfaces[i]
		}
	}
	return nil
}

// Endpoint is one end of a link.
type Endpoint struct {
	Router    string
	Interface string
	Address   netip.Prefix
}

// Link is a point-to-point link between two routers.
type Link struct{ A, B Endpoint }

// Segment is the L2 segment between a ToR and the nodes of its rack.
type Segment struct {
	Rack uint
	// ToR is 1 or 2: the nodes' first or second NIC.
	ToR int
	// Prefix is the subnet (10.69.0.64/26).
	Prefix netip.Prefix
	// Router and Interface are the ToR's end; Gateway its address.
	Router    string
	Interface string
	Gateway   netip.Addr
}

// Fabric is the generated network.
type Fabric struct {
	Routers  []*Router
	Links    []Link
	Segments []Segment
}

// Router returns the named router, or nil.
func (f *Fabric) Router(name string) *Router {
	for _, r := range f.Routers {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Names of routers and interfaces.
const nodeInterface = "nodes"

// ToRName is the name of ToR tor (1 or 2) of rack.
func ToRName(rack uint, tor int) string { return fmt.Sprintf("rack%d-tor%d", rack, tor) }

// SpineName is the name of spine s (1-based).
func SpineName(s int) string { return "spine" + strconv.Itoa(s) }

// CoreName is the core router's name.
const CoreName = "core"

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Generate builds the fabric of cfg.
func Generate(cfg Config) (*Fabric, error) {
	if cfg.IPAM == nil {
		return nil, invalid("no IPAM configuration")
	}
	if err := bgp.CheckIPAMBounds(cfg.IPAM); err != nil {
		return nil, invalid("%v", err)
	}
	if err := cfg.IPAM.Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	if cfg.IPAM.NodeIPPerNode < 3 {
		return nil, invalid("node-ip-per-node is %d; nodes need 3 addresses (node0 and one per ToR)", cfg.IPAM.NodeIPPerNode)
	}
	if len(cfg.Racks) == 0 {
		return nil, invalid("no racks")
	}
	if cfg.Spines < 1 || cfg.Spines > 64 {
		return nil, invalid("%d spines: want 1..64", cfg.Spines)
	}
	if cfg.AS == (bgp.ASPlan{}) {
		cfg.AS = bgp.DefaultASPlan()
	}
	if cfg.Timers == (bgp.Timers{}) {
		cfg.Timers = bgp.FastTimers()
	}
	if err := cfg.Timers.Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	if !cfg.LinkPool.IsValid() {
		cfg.LinkPool = DefaultLinkPool
	}
	if !cfg.LinkPool.Addr().Is4() || cfg.LinkPool.Masked() != cfg.LinkPool || cfg.LinkPool.Bits() > 30 {
		return nil, invalid("link pool %s: want an IPv4 prefix of at least /30 with host bits zero", cfg.LinkPool)
	}
	nodePool := netip.MustParsePrefix(cfg.IPAM.NodeIPv4Pool)
	if cfg.LinkPool.Overlaps(nodePool) {
		return nil, invalid("link pool %s overlaps node-ipv4-pool %s", cfg.LinkPool, nodePool)
	}
	maxRacks := cfg.IPAM.MaxRacks()
	racks := slices.Clone(cfg.Racks)
	slices.Sort(racks)
	for i, r := range racks {
		if r >= maxRacks {
			return nil, invalid("rack %d is outside the address pools, which hold racks 0..%d", r, maxRacks-1)
		}
		if i > 0 && racks[i-1] == r {
			return nil, invalid("rack %d is listed twice", r)
		}
	}
	if err := cfg.AS.Validate(racks[len(racks)-1] + 1); err != nil {
		return nil, invalid("%v", err)
	}
	links := uint64(len(racks))*2*uint64(cfg.Spines) + uint64(cfg.Spines)
	if capacity := uint64(1) << (32 - cfg.LinkPool.Bits()) / 2; links > capacity {
		return nil, invalid("link pool %s holds %d /31 links, the fabric needs %d", cfg.LinkPool, capacity, links)
	}
	if cfg.DefaultGateway.IsValid() && !cfg.DefaultGateway.Is4() {
		return nil, invalid("default gateway %s is not IPv4", cfg.DefaultGateway)
	}
	servers := cfg.DHCPServers
	if servers == nil {
		for _, r := range racks {
			servers = append(servers, cfg.IPAM.NodeAddresses(r, cfg.IPAM.NodeIndexOffset)[0])
		}
	}
	g := &generator{cfg: cfg, next: cfg.LinkPool.Addr()}
	return g.build(racks, servers)
}

type generator struct {
	cfg    Config
	next   netip.Addr
	fabric Fabric
}

// link allocates the next /31 and connects a's interface aIf to b's bIf.
func (g *generator) link(a *Router, aIf string, b *Router, bIf string) {
	addrA, addrB := g.next, g.next.Next()
	g.next = addrB.Next()
	ea := Endpoint{Router: a.Name, Interface: aIf, Address: netip.PrefixFrom(addrA, 31)}
	eb := Endpoint{Router: b.Name, Interface: bIf, Address: netip.PrefixFrom(addrB, 31)}
	a.Interfaces = append(a.Interfaces, Interface{Name: aIf, Address: ea.Address, Peer: b.Name, PeerInterface: bIf})
	b.Interfaces = append(b.Interfaces, Interface{Name: bIf, Address: eb.Address, Peer: a.Name, PeerInterface: aIf})
	g.fabric.Links = append(g.fabric.Links, Link{A: ea, B: eb})
}

func (g *generator) build(racks []uint, servers []netip.Addr) (*Fabric, error) {
	ipam := g.cfg.IPAM
	core := &Router{Name: CoreName, Role: Core, AS: g.cfg.AS.Core}
	var spines []*Router
	for s := 1; s <= g.cfg.Spines; s++ {
		spines = append(spines, &Router{Name: SpineName(s), Role: Spine, AS: g.cfg.AS.Spine})
	}
	var tors []*Router
	for _, r := range racks {
		as, _ := g.cfg.AS.Rack(r)
		// Link addresses of the rack's first node index give the subnets.
		addrs := ipam.NodeAddresses(r, ipam.NodeIndexOffset)
		for t := 1; t <= 2; t++ {
			gw := ipam.NodeGateway(addrs[t])
			prefix := netip.PrefixFrom(gw, int(ipam.NodeRangeMask))
			tor := &Router{Name: ToRName(r, t), Role: ToR, Rack: r, ToR: t, AS: as, RouterID: gw,
				Interfaces: []Interface{{Name: nodeInterface, Address: prefix}},
				Relay:      &Relay{Interface: nodeInterface, Address: gw, Servers: servers},
			}
			g.fabric.Segments = append(g.fabric.Segments, Segment{Rack: r, ToR: t, Prefix: prefix.Masked(),
				Router: tor.Name, Interface: nodeInterface, Gateway: gw})
			tors = append(tors, tor)
		}
	}
	for s, spine := range spines {
		for _, tor := range tors {
			g.link(tor, SpineName(s+1), spine, fmt.Sprintf("r%dt%d", tor.Rack, tor.ToR))
		}
	}
	for _, spine := range spines {
		g.link(spine, CoreName, core, spine.Name)
	}
	for _, r := range append(append([]*Router{core}, spines...), tors...) {
		if !r.RouterID.IsValid() {
			r.RouterID = r.Interfaces[0].Address.Addr()
		}
	}
	for _, r := range tors {
		if err := g.render(r, torTemplate); err != nil {
			return nil, err
		}
	}
	for _, r := range spines {
		if err := g.render(r, spineTemplate); err != nil {
			return nil, err
		}
	}
	if err := g.render(core, coreTemplate); err != nil {
		return nil, err
	}
	g.fabric.Routers = append(append([]*Router{core}, spines...), tors...)
	return &g.fabric, nil
}

// peer is a BGP neighbor in a template.
type peer struct {
	Name    string
	Address netip.Addr
	AS      uint32
}

// asOf returns the AS of the named router.
func (g *generator) asOf(name string) uint32 {
	var rack uint
	var tor int
	switch {
	case name == CoreName:
		return g.cfg.AS.Core
	case strings.HasPrefix(name, "spine"):
		return g.cfg.AS.Spine
	}
	fmt.Sscanf(name, "rack%d-tor%d", &rack, &tor)
	as, _ := g.cfg.AS.Rack(rack)
	return as
}

// peers returns the BGP neighbors on r's point-to-point links: the other
// address of each /31.
func (g *generator) peers(r *Router) []peer {
	var out []peer
	for _, i := range r.Interfaces {
		if i.Peer == "" {
			continue
		}
		other := i.Address.Masked().Addr()
		if other == i.Address.Addr() {
			other = other.Next()
		}
		out = append(out, peer{Name: i.Name, Address: other, AS: g.asOf(i.Peer)})
	}
	return out
}

var (
	//go:embed tor.conf.tmpl
	torText     string
	torTemplate = template.Must(template.New("tor").Parse(torText))
	//go:embed spine.conf.tmpl
	spineText     string
	spineTemplate = template.Must(template.New("spine").Parse(spineText))
	//go:embed core.conf.tmpl
	coreText     string
	coreTemplate = template.Must(template.New("core").Parse(coreText))
)

func (g *generator) render(r *Router, t *template.Template) error {
	data := struct {
		*Router
		Timers  bgp.Timers
		Peers   []peer
		Segment netip.Prefix
		Default string
	}{Router: r, Timers: g.cfg.Timers, Peers: g.peers(r)}
	switch r.Role {
	case ToR:
		data.Segment = r.Interfaces[0].Address.Masked()
	case Core:
		data.Default = "blackhole"
		if g.cfg.DefaultGateway.IsValid() {
			data.Default = "via " + g.cfg.DefaultGateway.String()
		}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("routers: render %s: %w", r.Name, err)
	}
	r.BIRD = b.Bytes()
	return nil
}
