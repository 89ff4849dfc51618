package dhcpd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

// Lease is the record of one leased address.
type Lease struct {
	// MAC is the holder's hardware address; empty when Declined.
	MAC string `json:"mac"`
	// Expires is when the address becomes free again.
	Expires time.Time `json:"expires"`
	// Declined marks an address a client reported in use by someone else
	// (DHCPDECLINE); nobody gets it until it expires.
	Declined bool `json:"declined,omitempty"`
}

// HeldBy reports whether mac holds the lease, expired or not.
func (l Lease) HeldBy(mac net.HardwareAddr) bool {
	return !l.Declined && l.MAC == mac.String()
}

// Active reports whether the lease still blocks its address at now.
func (l Lease) Active(now time.Time) bool { return now.Before(l.Expires) }

// Errors of a LeaseStore.
var (
	// ErrTaken: another client holds the address.
	ErrTaken = errors.New("dhcpd: address is leased to another client")
	// ErrNoFreeAddress: every address of the range is leased or declined.
	ErrNoFreeAddress = errors.New("dhcpd: no free address in the lease range")
)

// LeaseStore keeps the leases that every boot server shares.
type LeaseStore interface {
	// Offer proposes an address of r for mac: the one mac holds already, or
	// a free one. It need not write anything durable.
	Offer(ctx context.Context, r sabakan.LeaseRange, mac net.HardwareAddr, now time.Time) (netip.Addr, error)
	// Lookup returns the lease record of addr, if there is one.
	Lookup(ctx context.Context, addr netip.Addr) (Lease, bool, error)
	// Acquire leases addr to mac for d from now, or renews mac's lease of
	// it. It returns ErrTaken when another client holds an unexpired lease
	// or the address is declined. The returned lease may expire later than
	// now+d/2 but never earlier.
	Acquire(ctx context.Context, addr netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) (Lease, error)
	// Decline blocks addr, which mac holds, for d from now.
	Decline(ctx context.Context, addr netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) error
	// Release frees addr if mac holds it.
	Release(ctx context.Context, addr netip.Addr, mac net.HardwareAddr) error
}
