package netconf

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// The netlink side is tested in pkg/bgp/fabrictest (TestNode0, the fabric
// tests), which needs root and network namespaces.

func TestParseKind(t *testing.T) {
	for _, ok := range []string{"auto", "dummy", "ifb"} {
		if k, err := ParseKind(ok); err != nil || string(k) != ok {
			t.Errorf("ParseKind(%q) = %q, %v", ok, k, err)
		}
	}
	for _, bad := range []string{"", "bridge", "Dummy"} {
		if _, err := ParseKind(bad); err == nil {
			t.Errorf("ParseKind(%q) accepted", bad)
		}
	}
}

func TestPrefixConversion(t *testing.T) {
	p := netip.MustParsePrefix("10.69.0.68/26")
	n := toIPNet(p)
	if n.String() != "10.69.0.68/26" {
		t.Errorf("toIPNet = %s", n)
	}
	back, ok := toPrefix(n)
	if !ok || back != p {
		t.Errorf("toPrefix = %s %v", back, ok)
	}
	// A 16-byte IPv4 address from netlink is unmapped.
	back, ok = toPrefix(&net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(32, 32)})
	if !ok || back.String() != "10.0.0.1/32" {
		t.Errorf("toPrefix(16-byte) = %s %v", back, ok)
	}
	if _, ok := toPrefix(nil); ok {
		t.Error("toPrefix(nil) ok")
	}
}

func TestNextHops(t *testing.T) {
	if n := NextHops(&netlink.Route{}); n != 1 {
		t.Errorf("single path = %d", n)
	}
	if n := NextHops(&netlink.Route{MultiPath: []*netlink.NexthopInfo{{}, {}}}); n != 2 {
		t.Errorf("ECMP = %d", n)
	}
}
