package sabakan

import (
	"fmt"
	"net/netip"
)

// IPAMConfig is the address plan: how rack and index in rack become a
// machine's node and BMC addresses, and which addresses DHCP may lease.
// Methods other than Validate assume a configuration that Validate accepted.
type IPAMConfig struct {
	MaxNodesInRack    uint   `json:"max-nodes-in-rack"`
	NodeIPv4Pool      string `json:"node-ipv4-pool"`
	NodeIPv4Offset    string `json:"node-ipv4-offset,omitempty"`
	NodeRangeSize     uint   `json:"node-ipv4-range-size"`
	NodeRangeMask     uint   `json:"node-ipv4-range-mask"`
	NodeIPPerNode     uint   `json:"node-ip-per-node"`
	NodeIndexOffset   uint   `json:"node-index-offset"`
	NodeGatewayOffset uint   `json:"node-gateway-offset"`

	BMCIPv4Pool      string `json:"bmc-ipv4-pool"`
	BMCIPv4Offset    string `json:"bmc-ipv4-offset,omitempty"`
	BMCRangeSize     uint   `json:"bmc-ipv4-range-size"`
	BMCRangeMask     uint   `json:"bmc-ipv4-range-mask"`
	BMCGatewayOffset uint   `json:"bmc-ipv4-gateway-offset"`
}

func badIPAM(format string, args ...any) error {
	return fmt.Errorf("%w: ipam: "+format, append([]any{ErrBadRequest}, args...)...)
}

// pool parses a CIDR whose host bits must be zero.
func pool(name, cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, badIPAM("invalid %s %q: want an IPv4 CIDR", name, cidr)
	}
	if p.Masked() != p {
		return netip.Prefix{}, badIPAM("host bits of %s %q must be zero", name, cidr)
	}
	return p, nil
}

// offset parses an optional dotted-quad offset ("0.0.1.0" is 256).
func offset(name, s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, badIPAM("invalid %s %q: want a dotted IPv4 offset", name, s)
	}
	return toU32(a), nil
}

// ReferenceIPAM returns the reference deployment's address plan
// (network.md): node addresses from 10.69.0.0/20, three /26 ranges per rack
// (one per node address), machines from index 3 in their rack, so the boot
// servers (index 3) of racks 0, 1, 2 have 10.69.0.3, 10.69.0.195 and
// 10.69.1.131; BMC addresses from 10.72.16.0/20.
func ReferenceIPAM() *IPAMConfig {
	return &IPAMConfig{
		MaxNodesInRack:    28,
		NodeIPv4Pool:      "10.69.0.0/20",
		NodeRangeSize:     6,
		NodeRangeMask:     26,
		NodeIPPerNode:     3,
		NodeIndexOffset:   3,
		NodeGatewayOffset: 1,
		BMCIPv4Pool:       "10.72.16.0/20",
		BMCRangeSize:      5,
		BMCRangeMask:      20,
		BMCGatewayOffset:  1,
	}
}

// Validate checks the configuration, including that every address it can
// produce stays inside its pool and inside its sub-range.
func (c *IPAMConfig) Validate() error {
	nodePool, err := pool("node-ipv4-pool", c.NodeIPv4Pool)
	if err != nil {
		return err
	}
	nodeOff, err := offset("node-ipv4-offset", c.NodeIPv4Offset)
	if err != nil {
		return err
	}
	bmcPool, err := pool("bmc-ipv4-pool", c.BMCIPv4Pool)
	if err != nil {
		return err
	}
	bmcOff, err := offset("bmc-ipv4-offset", c.BMCIPv4Offset)
	if err != nil {
		return err
	}
	for _, n := range []struct {
		name  string
		value uint
	}{
		{"max-nodes-in-rack", c.MaxNodesInRack},
		{"node-ip-per-node", c.NodeIPPerNode},
		{"node-index-offset", c.NodeIndexOffset},
		{"node-gateway-offset", c.NodeGatewayOffset},
		{"node-ipv4-range-size", c.NodeRangeSize},
		{"bmc-ipv4-range-size", c.BMCRangeSize},
		{"bmc-ipv4-gateway-offset", c.BMCGatewayOffset},
	} {
		if n.value == 0 {
			return badIPAM("%s must not be zero", n.name)
		}
	}
	if c.NodeRangeMask < 8 || c.NodeRangeMask > 32 {
		return badIPAM("node-ipv4-range-mask %d is outside 8..32", c.NodeRangeMask)
	}
	if c.BMCRangeMask < 8 || c.BMCRangeMask > 32 {
		return badIPAM("bmc-ipv4-range-mask %d is outside 8..32", c.BMCRangeMask)
	}
	if c.NodeRangeSize > 32-uint(nodePool.Bits()) {
		return badIPAM("node-ipv4-range-size %d does not fit in node-ipv4-pool %s", c.NodeRangeSize, nodePool)
	}
	if c.BMCRangeSize > 32-uint(bmcPool.Bits()) {
		return badIPAM("bmc-ipv4-range-size %d does not fit in bmc-ipv4-pool %s", c.BMCRangeSize, bmcPool)
	}
	if uint64(c.NodeIPPerNode) > poolSize(nodePool)>>c.NodeRangeSize {
		return badIPAM("node-ip-per-node %d sub-ranges of 2^%d addresses do not fit in node-ipv4-pool %s", c.NodeIPPerNode, c.NodeRangeSize, nodePool)
	}
	if uint64(c.NodeGatewayOffset) >= uint64(1)<<(32-c.NodeRangeMask) {
		return badIPAM("node-gateway-offset %d is outside a /%d network", c.NodeGatewayOffset, c.NodeRangeMask)
	}
	if uint64(c.BMCGatewayOffset) >= uint64(1)<<(32-c.BMCRangeMask) {
		return badIPAM("bmc-ipv4-gateway-offset %d is outside a /%d network", c.BMCGatewayOffset, c.BMCRangeMask)
	}
	if c.NodeIndexOffset >= 1<<32 || c.MaxNodesInRack >= 1<<32 {
		return badIPAM("node-index-offset and max-nodes-in-rack must be below 2^32")
	}
	// Indices must stay inside one sub-range: the last index plus the DHCP
	// range start must leave room below the sub-range's broadcast address.
	last := uint64(c.NodeIndexOffset) + uint64(c.MaxNodesInRack)
	if last >= uint64(1)<<c.NodeRangeSize-1 {
		return badIPAM("node-index-offset + max-nodes-in-rack = %d does not fit in a sub-range of 2^%d addresses", last, c.NodeRangeSize)
	}
	if last >= uint64(1)<<c.BMCRangeSize {
		return badIPAM("node-index-offset + max-nodes-in-rack = %d does not fit in a BMC sub-range of 2^%d addresses", last, c.BMCRangeSize)
	}
	if uint64(nodeOff) >= poolSize(nodePool) {
		return badIPAM("node-ipv4-offset %s is outside node-ipv4-pool %s", c.NodeIPv4Offset, nodePool)
	}
	if uint64(bmcOff) >= poolSize(bmcPool) {
		return badIPAM("bmc-ipv4-offset %s is outside bmc-ipv4-pool %s", c.BMCIPv4Offset, bmcPool)
	}
	if c.MaxRacks() == 0 {
		return badIPAM("node-ipv4-pool %s holds no rack: it needs %d addresses per rack", nodePool, c.rackStride())
	}
	return nil
}

func poolSize(p netip.Prefix) uint64 { return uint64(1) << (32 - p.Bits()) }

func toU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// mustParsed returns the parsed pools and offsets of a validated config.
func (c *IPAMConfig) mustParsed() (nodePool netip.Prefix, nodeOff uint32, bmcPool netip.Prefix, bmcOff uint32) {
	nodePool = netip.MustParsePrefix(c.NodeIPv4Pool)
	bmcPool = netip.MustParsePrefix(c.BMCIPv4Pool)
	nodeOff, _ = offset("", c.NodeIPv4Offset)
	bmcOff, _ = offset("", c.BMCIPv4Offset)
	return
}

// rackStride is the number of node addresses one rack occupies.
func (c *IPAMConfig) rackStride() uint64 {
	return uint64(1) << c.NodeRangeSize * uint64(c.NodeIPPerNode)
}

// MaxRacks is how many racks fit in both pools after their offsets.
func (c *IPAMConfig) MaxRacks() uint {
	nodePool, nodeOff, bmcPool, bmcOff := c.mustParsed()
	nodes := (poolSize(nodePool) - uint64(nodeOff)) / c.rackStride()
	bmcs := (poolSize(bmcPool) - uint64(bmcOff)) / (uint64(1) << c.BMCRangeSize)
	return uint(min(nodes, bmcs))
}

// IndexRange is the indices ordinary (non-boot) machines of a rack may get.
func (c *IPAMConfig) IndexRange() (first, last uint) {
	return c.NodeIndexOffset + 1, c.NodeIndexOffset + c.MaxNodesInRack
}

// CheckPlacement reports whether a machine at rack and index has addresses
// inside the pools.
func (c *IPAMConfig) CheckPlacement(rack, index uint) error {
	if max := c.MaxRacks(); rack >= max {
		return fmt.Errorf("%w: rack %d is outside the address pools, which hold racks 0..%d", ErrBadRequest, rack, max-1)
	}
	if index < c.NodeIndexOffset || index > c.NodeIndexOffset+c.MaxNodesInRack {
		return fmt.Errorf("%w: index %d is outside %d..%d", ErrBadRequest, index, c.NodeIndexOffset, c.NodeIndexOffset+c.MaxNodesInRack)
	}
	return nil
}

// NodeAddresses returns the node addresses of the machine at rack and index:
// pool + offset + 2^size·perNode·rack + index + i·2^size, i = 0..perNode-1.
func (c *IPAMConfig) NodeAddresses(rack, index uint) []netip.Addr {
	nodePool, nodeOff, _, _ := c.mustParsed()
	base := uint64(toU32(nodePool.Addr())) + uint64(nodeOff) + c.rackStride()*uint64(rack) + uint64(index)
	addrs := make([]netip.Addr, c.NodeIPPerNode)
	for i := range addrs {
		addrs[i] = fromU32(uint32(base + uint64(i)<<c.NodeRangeSize))
	}
	return addrs
}

// BMCAddress returns the BMC address of the machine at rack and index:
// bmcPool + bmcOffset + 2^bmcSize·rack + index.
func (c *IPAMConfig) BMCAddress(rack, index uint) netip.Addr {
	_, _, bmcPool, bmcOff := c.mustParsed()
	return fromU32(uint32(uint64(toU32(bmcPool.Addr())) + uint64(bmcOff) + uint64(rack)<<c.BMCRangeSize + uint64(index)))
}

// NodeGateway is the gateway of a node address: the address masked by
// node-ipv4-range-mask plus node-gateway-offset.
func (c *IPAMConfig) NodeGateway(a netip.Addr) netip.Addr {
	return gateway(a, c.NodeRangeMask, c.NodeGatewayOffset)
}

// BMCGateway is the gateway of a BMC address.
func (c *IPAMConfig) BMCGateway(a netip.Addr) netip.Addr {
	return gateway(a, c.BMCRangeMask, c.BMCGatewayOffset)
}

func gateway(a netip.Addr, bits, off uint) netip.Addr {
	p := netip.PrefixFrom(a, int(bits)).Masked()
	return fromU32(toU32(p.Addr()) + uint32(off))
}

func nicConfig(a netip.Addr, bits uint, gw netip.Addr) NICConfig {
	mask := uint32(0xffffffff) << (32 - bits)
	return NICConfig{Address: a.String(), Netmask: fromU32(mask).String(), MaskBits: int(bits), Gateway: gw.String()}
}

// Assign fills in the addresses and network information of m from its rack
// and index in rack.
func (c *IPAMConfig) Assign(m *Machine) {
	nodes := c.NodeAddresses(m.Spec.Rack, m.Spec.IndexInRack)
	m.Spec.IPv4 = make([]string, len(nodes))
	m.Spec.IPv6 = []string{}
	m.Info.Network.IPv4 = make([]NICConfig, len(nodes))
	for i, a := range nodes {
		m.Spec.IPv4[i] = a.String()
		m.Info.Network.IPv4[i] = nicConfig(a, c.NodeRangeMask, c.NodeGateway(a))
	}
	bmc := c.BMCAddress(m.Spec.Rack, m.Spec.IndexInRack)
	m.Spec.BMC.IPv4 = bmc.String()
	m.Info.BMC.IPv4 = nicConfig(bmc, c.BMCRangeMask, c.BMCGateway(bmc))
}

// LeaseRange is the block of addresses DHCP leases in one sub-range.
type LeaseRange struct {
	Start netip.Addr
	Count int
}

// Contains reports whether a is in the range.
func (r LeaseRange) Contains(a netip.Addr) bool {
	i, ok := r.Index(a)
	return ok && i < r.Count
}

// Index is the position of a in the range.
func (r LeaseRange) Index(a netip.Addr) (int, bool) {
	if !a.Is4() || !r.Start.IsValid() {
		return 0, false
	}
	d := int64(toU32(a)) - int64(toU32(r.Start))
	if d < 0 || d >= int64(r.Count) {
		return 0, false
	}
	return int(d), true
}

// Addr is the address at position i of the range.
func (r LeaseRange) Addr(i int) netip.Addr { return fromU32(toU32(r.Start) + uint32(i)) }

// Key names the range in etcd and logs: its first address.
func (r LeaseRange) Key() string { return r.Start.String() }

// LeaseRange returns the DHCP range of the sub-range holding ifaddr, the
// address the request arrived on (the receiving interface, or the relay's
// giaddr). It starts after the last machine index of the sub-range and ends
// before its broadcast address. ok is false when ifaddr is outside the pool.
func (c *IPAMConfig) LeaseRange(ifaddr netip.Addr) (LeaseRange, bool) {
	if !ifaddr.Is4() {
		return LeaseRange{}, false
	}
	nodePool, nodeOff, _, _ := c.mustParsed()
	base := uint64(toU32(nodePool.Addr())) + uint64(nodeOff)
	a := uint64(toU32(ifaddr))
	end := uint64(toU32(nodePool.Addr())) + poolSize(nodePool)
	if a < base || a >= end {
		return LeaseRange{}, false
	}
	size := uint64(1) << c.NodeRangeSize
	sub := base + (a-base)/size*size
	skip := uint64(c.NodeIndexOffset) + uint64(c.MaxNodesInRack) + 1
	count := int64(size) - 2 - int64(skip) + 1
	if count <= 0 || sub+size > end {
		return LeaseRange{}, false
	}
	return LeaseRange{Start: fromU32(uint32(sub + skip)), Count: int(count)}, true
}
