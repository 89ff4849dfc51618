package sabakan

import (
	"fmt"
	"net/netip"
)

// DefaultLeaseMinutes is the lease time when DHCPConfig does not set one.
const DefaultLeaseMinutes = 60

// DHCPConfig is the DHCP server's configuration.
type DHCPConfig struct {
	LeaseMinutes uint     `json:"lease-minutes"`
	DNSServers   []string `json:"dns-servers"`
	// GatewayOffset is obsolete and ignored; it is accepted so that old
	// configurations still load.
	GatewayOffset uint `json:"gateway-offset,omitempty"`
}

// Validate checks the configuration.
func (c *DHCPConfig) Validate() error {
	for _, s := range c.DNSServers {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			return fmt.Errorf("%w: dhcp: invalid DNS server %q: want an IPv4 address", ErrBadRequest, s)
		}
	}
	if c.LeaseMinutes > 60*24*365 {
		return fmt.Errorf("%w: dhcp: lease-minutes %d is longer than a year", ErrBadRequest, c.LeaseMinutes)
	}
	return nil
}

// LeaseMinutesOrDefault is the lease time to grant.
func (c *DHCPConfig) LeaseMinutesOrDefault() uint {
	if c.LeaseMinutes == 0 {
		return DefaultLeaseMinutes
	}
	return c.LeaseMinutes
}
