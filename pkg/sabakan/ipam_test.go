package sabakan

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// referenceIPAM is the worked example of the reference documentation.
func referenceIPAM() *IPAMConfig {
	return &IPAMConfig{
		MaxNodesInRack:    28,
		NodeIPv4Pool:      "10.69.0.0/16",
		NodeRangeSize:     6,
		NodeRangeMask:     26,
		NodeIPPerNode:     3,
		NodeIndexOffset:   3,
		NodeGatewayOffset: 1,
		BMCIPv4Pool:       "10.72.16.0/20",
		BMCIPv4Offset:     "0.0.1.0",
		BMCRangeSize:      5,
		BMCRangeMask:      20,
		BMCGatewayOffset:  1,
	}
}

func TestIPAMWorkedExample(t *testing.T) {
	c := referenceIPAM()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		rack, index uint
		nodes       []string
		gateways    []string
		bmc         string
	}{
		{"rack 1 index 5", 1, 5,
			[]string{"10.69.0.197", "10.69.1.5", "10.69.1.69"},
			[]string{"10.69.0.193", "10.69.1.1", "10.69.1.65"}, "10.72.17.37"},
		{"rack 0 index 4", 0, 4,
			[]string{"10.69.0.4", "10.69.0.68", "10.69.0.132"},
			[]string{"10.69.0.1", "10.69.0.65", "10.69.0.129"}, "10.72.17.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(MachineSpec{Serial: "s", Rack: tt.rack, IndexInRack: tt.index}, testTime)
			c.Assign(m)
			if !slices.Equal(m.Spec.IPv4, tt.nodes) {
				t.Errorf("node addresses = %v, want %v", m.Spec.IPv4, tt.nodes)
			}
			for i, nic := range m.Info.Network.IPv4 {
				if nic.Gateway != tt.gateways[i] || nic.MaskBits != 26 || nic.Netmask != "255.255.255.192" {
					t.Errorf("nic %d = %+v, want gateway %s /26", i, nic, tt.gateways[i])
				}
			}
			if m.Spec.BMC.IPv4 != tt.bmc {
				t.Errorf("BMC = %s, want %s", m.Spec.BMC.IPv4, tt.bmc)
			}
			if bmc := m.Info.BMC.IPv4; bmc.Gateway != "10.72.16.1" || bmc.MaskBits != 20 || bmc.Netmask != "255.255.240.0" {
				t.Errorf("BMC info = %+v, want gateway 10.72.16.1/20", bmc)
			}
		})
	}
}

func TestLeaseRange(t *testing.T) {
	c := referenceIPAM()
	tests := []struct {
		ifaddr string
		start  string
		count  int
		ok     bool
	}{
		{"10.69.0.193", "10.69.0.224", 31, true},
		{"10.69.0.3", "10.69.0.32", 31, true},
		{"10.69.0.65", "10.69.0.96", 31, true},
		{"10.70.0.1", "", 0, false},
		{"192.168.0.1", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.ifaddr, func(t *testing.T) {
			r, ok := c.LeaseRange(netip.MustParseAddr(tt.ifaddr))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if r.Start.String() != tt.start || r.Count != tt.count {
				t.Errorf("range = %s+%d, want %s+%d", r.Start, r.Count, tt.start, tt.count)
			}
			last := r.Addr(r.Count - 1)
			if !r.Contains(last) || r.Contains(r.Addr(r.Count)) {
				t.Errorf("Contains is wrong at the end of the range (last %s)", last)
			}
		})
	}
}

func TestIPAMValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*IPAMConfig)
	}{
		{"pool with host bits", func(c *IPAMConfig) { c.NodeIPv4Pool = "10.69.0.1/16" }},
		{"pool not CIDR", func(c *IPAMConfig) { c.NodeIPv4Pool = "10.69.0.0" }},
		{"IPv6 pool", func(c *IPAMConfig) { c.NodeIPv4Pool = "fd00::/64" }},
		{"bad offset", func(c *IPAMConfig) { c.NodeIPv4Offset = "1.2.3" }},
		{"offset outside pool", func(c *IPAMConfig) { c.NodeIPv4Offset = "0.1.0.0"; c.NodeIPv4Pool = "10.69.0.0/20" }},
		{"zero max nodes", func(c *IPAMConfig) { c.MaxNodesInRack = 0 }},
		{"zero ip per node", func(c *IPAMConfig) { c.NodeIPPerNode = 0 }},
		{"zero range size", func(c *IPAMConfig) { c.NodeRangeSize = 0 }},
		{"mask too small", func(c *IPAMConfig) { c.NodeRangeMask = 7 }},
		{"mask too large", func(c *IPAMConfig) { c.BMCRangeMask = 33 }},
		{"range larger than pool", func(c *IPAMConfig) { c.NodeRangeSize = 17 }},
		{"indices overflow sub-range", func(c *IPAMConfig) { c.MaxNodesInRack = 61 }},
		{"indices overflow BMC sub-range", func(c *IPAMConfig) { c.BMCRangeSize = 4 }},
		{"pool holds no rack", func(c *IPAMConfig) { c.NodeIPv4Pool = "10.69.0.0/26" }},
		{"zero gateway offset", func(c *IPAMConfig) { c.NodeGatewayOffset = 0 }},
		{"gateway offset outside the network", func(c *IPAMConfig) { c.NodeGatewayOffset = 64 }},
		{"BMC gateway offset outside the network", func(c *IPAMConfig) { c.BMCGatewayOffset = 1 << 12 }},
		{"huge ip per node", func(c *IPAMConfig) { c.NodeIPPerNode = 1 << 58 }},
		{"ip per node beyond the pool", func(c *IPAMConfig) { c.NodeIPPerNode = 1025 }},
		{"huge index offset", func(c *IPAMConfig) { c.NodeIndexOffset = 1 << 63 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := referenceIPAM()
			tt.modify(c)
			if err := c.Validate(); !errors.Is(err, ErrBadRequest) {
				t.Errorf("Validate() = %v, want ErrBadRequest", err)
			}
		})
	}
}

func TestIPAMCapacity(t *testing.T) {
	c := referenceIPAM()
	c.NodeIPv4Pool = "10.69.0.0/20" // 4096 addresses, 192 per rack
	if got := c.MaxRacks(); got != 21 {
		t.Errorf("MaxRacks() = %d, want 21", got)
	}
	if err := c.CheckPlacement(21, 4); !errors.Is(err, ErrBadRequest) {
		t.Errorf("rack 21 accepted: %v", err)
	}
	if err := c.CheckPlacement(20, 31); err != nil {
		t.Errorf("rack 20 index 31 rejected: %v", err)
	}
	if err := c.CheckPlacement(0, 32); !errors.Is(err, ErrBadRequest) {
		t.Errorf("index 32 accepted: %v", err)
	}
}

// FuzzIPAM checks that every configuration Validate accepts yields addresses
// inside its pools for every placement CheckPlacement accepts.
func FuzzIPAM(f *testing.F) {
	ref, _ := json.Marshal(referenceIPAM())
	f.Add(ref, uint(1), uint(5))
	f.Add([]byte(`{"max-nodes-in-rack":1,"node-ipv4-pool":"10.0.0.0/30","node-ipv4-range-size":2,"node-ipv4-range-mask":30,"node-ip-per-node":1,"node-index-offset":1,"node-gateway-offset":1,"bmc-ipv4-pool":"10.1.0.0/30","bmc-ipv4-range-size":2,"bmc-ipv4-range-mask":30,"bmc-ipv4-gateway-offset":1}`), uint(0), uint(2))
	f.Add([]byte(`{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/16","node-ipv4-range-size":6,"node-ipv4-range-mask":26,"node-ip-per-node":288230376151711744,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`), uint(0), uint(4))
	f.Fuzz(func(t *testing.T, data []byte, rack, index uint) {
		var c IPAMConfig
		if json.Unmarshal(data, &c) != nil || c.Validate() != nil {
			return
		}
		if c.CheckPlacement(rack, index) != nil {
			return
		}
		nodePool := netip.MustParsePrefix(c.NodeIPv4Pool)
		bmcPool := netip.MustParsePrefix(c.BMCIPv4Pool)
		for _, a := range c.NodeAddresses(rack, index) {
			if !nodePool.Contains(a) {
				t.Fatalf("node address %s outside pool %s", a, nodePool)
			}
		}
		if a := c.BMCAddress(rack, index); !bmcPool.Contains(a) {
			t.Fatalf("BMC address %s outside pool %s", a, bmcPool)
		}
		for _, a := range c.NodeAddresses(rack, index) {
			if r, ok := c.LeaseRange(a); ok && r.Contains(a) {
				t.Fatalf("node address %s inside the DHCP range %s+%d", a, r.Start, r.Count)
			}
		}
	})
}

func TestReferenceIPAMBootServers(t *testing.T) {
	c := ReferenceIPAM()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for rack, want := range []string{"10.69.0.3", "10.69.0.195", "10.69.1.131"} {
		if got := c.NodeAddresses(uint(rack), 3)[0].String(); got != want {
			t.Errorf("boot server of rack %d: %s, want %s", rack, got, want)
		}
	}
	if c2 := ReferenceIPAM(); c2 == c {
		t.Error("ReferenceIPAM returned a shared value")
	}
}
