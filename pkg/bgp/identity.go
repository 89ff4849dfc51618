package bgp

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/openneco/neco/pkg/sabakan"
)

// Source is what a node's identity is derived from: the machine as sabakan
// returns it (GET /api/v1/machines?serial=) and the IPAM configuration
// (GET /api/v1/config/ipam). The agent's identity file and its cache have
// this form. In a file, spec.ipv4 and info may be left out: the IPAM
// formulas fill them in.
type Source struct {
	Machine sabakan.Machine    `json:"machine"`
	IPAM    sabakan.IPAMConfig `json:"ipam"`
}

// Link is one of the node's two uplinks.
type Link struct {
	// Address is the node's address on the link, with the length of the
	// ToR's subnet (10.69.0.68/26); the kernel gets it with scope link.
	Address netip.Prefix `json:"address"`
	// ToR is the switch's address on the link and the node's BGP neighbor.
	ToR netip.Addr `json:"tor"`
}

// Identity is who a node is on the network.
type Identity struct {
	Serial string `json:"serial"`
	Role   string `json:"role"`
	Rack   uint   `json:"rack"`
	Index  uint   `json:"index-in-rack"`
	// AS is the rack's AS, shared by the node and both ToRs (iBGP).
	AS uint32 `json:"as"`
	// Node is the node address: a /32 on node0, reachable while either link
	// is up. It is also BIRD's router id.
	Node netip.Addr `json:"node-address"`
	// Links are the uplinks to ToR 1 and ToR 2, in that order.
	Links [2]Link `json:"links"`
}

func badIdentity(serial, format string, args ...any) error {
	return fmt.Errorf("%w: machine %s: "+format, append([]any{ErrInvalidIdentity, serial}, args...)...)
}

// Identity derives and checks the node's identity. The IPAM configuration
// must be valid, the machine must sit inside the address pools, any
// addresses it carries must be the ones the IPAM formulas give for its rack
// and index, and its rack must get an AS of its own.
func (s *Source) Identity(plan ASPlan) (*Identity, error) {
	spec := &s.Machine.Spec
	serial := spec.Serial
	if !sabakan.IsValidSerial(serial) {
		return nil, fmt.Errorf("%w: invalid serial %q", ErrInvalidIdentity, serial)
	}
	ipam := &s.IPAM
	if err := CheckIPAMBounds(ipam); err != nil {
		return nil, badIdentity(serial, "%v", err)
	}
	if err := ipam.Validate(); err != nil {
		return nil, badIdentity(serial, "%v", err)
	}
	if ipam.NodeIPPerNode < 3 {
		return nil, badIdentity(serial, "node-ip-per-node is %d; a node needs 3 addresses (node0 and one per link)", ipam.NodeIPPerNode)
	}
	if err := ipam.CheckPlacement(spec.Rack, spec.IndexInRack); err != nil {
		return nil, badIdentity(serial, "%v", err)
	}
	pool := netip.MustParsePrefix(ipam.NodeIPv4Pool)
	want := ipam.NodeAddresses(spec.Rack, spec.IndexInRack)
	for _, a := range want {
		if !pool.Contains(a) {
			return nil, badIdentity(serial, "the IPAM formulas give address %s, outside node-ipv4-pool %s", a, pool)
		}
	}
	if len(spec.IPv4) > 0 {
		got := make([]netip.Addr, len(spec.IPv4))
		for i, a := range spec.IPv4 {
			addr, err := netip.ParseAddr(a)
			if err != nil || !addr.Is4() {
				return nil, badIdentity(serial, "ipv4[%d] %q is not an IPv4 address", i, a)
			}
			if !pool.Contains(addr) {
				return nil, badIdentity(serial, "address %s is outside node-ipv4-pool %s", addr, pool)
			}
			got[i] = addr
		}
		if !slices.Equal(got, want) {
			return nil, badIdentity(serial, "addresses %v disagree with the IPAM configuration, which gives rack %d index %d the addresses %v", got, spec.Rack, spec.IndexInRack, want)
		}
	}
	for i, nic := range s.Machine.Info.Network.IPv4 {
		if i >= len(want) {
			return nil, badIdentity(serial, "info.network.ipv4 has %d entries, more than node-ip-per-node %d", len(s.Machine.Info.Network.IPv4), len(want))
		}
		gw := ipam.NodeGateway(want[i])
		if nic.Address != want[i].String() || nic.MaskBits != int(ipam.NodeRangeMask) || nic.Gateway != gw.String() {
			return nil, badIdentity(serial, "info.network.ipv4[%d] %s/%d gateway %s disagrees with the IPAM configuration (%s/%d gateway %s)",
				i, nic.Address, nic.MaskBits, nic.Gateway, want[i], ipam.NodeRangeMask, gw)
		}
	}
	if err := plan.Validate(0); err != nil {
		return nil, badIdentity(serial, "%v", err)
	}
	as, err := plan.Rack(spec.Rack)
	if err != nil {
		return nil, badIdentity(serial, "%v", err)
	}
	id := &Identity{
		Serial: serial,
		Role:   spec.Role,
		Rack:   spec.Rack,
		Index:  spec.IndexInRack,
		AS:     as,
		Node:   want[0],
	}
	for i := range id.Links {
		a := want[i+1]
		l := Link{Address: netip.PrefixFrom(a, int(ipam.NodeRangeMask)), ToR: ipam.NodeGateway(a)}
		if l.ToR == a || !l.Address.Masked().Contains(l.ToR) {
			return nil, badIdentity(serial, "link %d: ToR address %s is not another address in %s", i+1, l.ToR, l.Address.Masked())
		}
		if l.Address.Masked().Contains(id.Node) {
			return nil, badIdentity(serial, "link %d subnet %s contains the node address %s", i+1, l.Address.Masked(), id.Node)
		}
		id.Links[i] = l
	}
	if id.Links[0].Address.Masked() == id.Links[1].Address.Masked() {
		return nil, badIdentity(serial, "both links are in %s; each ToR needs a subnet of its own", id.Links[0].Address.Masked())
	}
	return id, nil
}

// MaxIPPerNode bounds node-ip-per-node. Larger values make
// sabakan.IPAMConfig.Validate overflow (it divides by the rack stride,
// 2^range-size × ip-per-node, computed in 64 bits).
const MaxIPPerNode = 64

// CheckIPAMBounds rejects IPAM values that sabakan.IPAMConfig.Validate
// cannot handle; call it first.
func CheckIPAMBounds(ipam *sabakan.IPAMConfig) error {
	if ipam.NodeIPPerNode > MaxIPPerNode {
		return fmt.Errorf("node-ip-per-node %d is above %d", ipam.NodeIPPerNode, MaxIPPerNode)
	}
	if ipam.NodeRangeSize > 32 || ipam.BMCRangeSize > 32 {
		return fmt.Errorf("range sizes %d and %d must be at most 32", ipam.NodeRangeSize, ipam.BMCRangeSize)
	}
	return nil
}
