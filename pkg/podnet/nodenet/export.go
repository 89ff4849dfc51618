package nodenet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
)

// SyncExport makes ExportTable hold exactly one route per block,
// "<block> dev lo proto <Protocol>" (scope universe, unicast, no metric), and
// nothing else: it deletes every other route in the table, whatever its
// protocol or family (the table is ours), then adds the missing blocks. A
// block already exported is not touched, so calling it again changes nothing
// and BIRD sees no flap. An empty blocks empties the table. Blocks must be
// IPv4 prefixes without host bits; an invalid one fails the call before any
// change. lo must be up (the kernel refuses routes through a down device).
func (c Config) SyncExport(blocks []netip.Prefix) error {
	fail := func(err error) error { return fmt.Errorf("nodenet: sync export table %d: %w", c.ExportTable, err) }
	if err := c.validate(); err != nil {
		return fail(err)
	}
	want := make(map[netip.Prefix]bool, len(blocks))
	for _, b := range blocks {
		switch {
		case !b.IsValid() || !b.Addr().Is4():
			return fail(fmt.Errorf("block %s: not an IPv4 prefix", b))
		case b != b.Masked():
			return fail(fmt.Errorf("block %s: host bits set (the block is %s)", b, b.Masked()))
		}
		want[b] = true
	}

	h, err := hostHandle()
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fail(fmt.Errorf("look up lo: %w", err))
	}
	if lo.Attrs().Flags&net.FlagUp == 0 && len(want) > 0 {
		return fail(errors.New("lo is down"))
	}
	routes, err := c.tableRoutes(h, c.ExportTable, netlink.FAMILY_ALL)
	if err != nil {
		return fail(fmt.Errorf("list routes: %w", err))
	}

	var errs []error
	have := make(map[netip.Prefix]bool, len(want))
	for _, r := range routes {
		if p := prefixOf(r.Dst); want[p] && !have[p] && c.isExportRoute(r, lo.Attrs().Index) {
			have[p] = true
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("delete %q: %w", r.String(), err))
		}
	}
	missing := make([]netip.Prefix, 0, len(want))
	for p := range want {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	slices.SortFunc(missing, netip.Prefix.Compare)
	for _, p := range missing {
		if err := h.RouteAdd(c.exportRoute(lo.Attrs().Index, p)); err != nil {
			errs = append(errs, fmt.Errorf("add %s dev lo proto %d: %w", p, c.Protocol, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return nil
}

func (c Config) exportRoute(loIndex int, p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		LinkIndex: loIndex,
		Dst:       prefixNet(p),
		Scope:     netlink.SCOPE_UNIVERSE,
		Protocol:  c.proto(),
		Table:     c.ExportTable,
		Type:      syscall.RTN_UNICAST,
	}
}

// isExportRoute reports whether r is exactly what exportRoute adds.
func (c Config) isExportRoute(r netlink.Route, loIndex int) bool {
	return r.Family == netlink.FAMILY_V4 && r.Type == syscall.RTN_UNICAST && r.LinkIndex == loIndex &&
		r.Protocol == c.proto() && r.Scope == netlink.SCOPE_UNIVERSE && r.Gw == nil && r.Via == nil &&
		len(r.MultiPath) == 0 && r.Src == nil && r.Priority == 0 && r.Tos == 0 && r.Encap == nil
}
