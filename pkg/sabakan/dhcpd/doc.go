// Package dhcpd is sabakan's DHCPv4 server: it leases addresses from the IPAM
// lease range of the sub-range a request came from (the receiving
// interface's, or the relay's giaddr), answers with the reference options
// (mask, router, DNS, lease time, server id) and points UEFI HTTP boot
// clients at ipxe.efi and iPXE at its boot script.
//
// Leases live in etcd, one key per address, so that several boot servers
// share them and a restart loses nothing. Each server keeps a watch-fed view
// of all leases in memory: DISCOVER never writes, REQUEST writes once when
// an address changes hands and renewals write only when less than half of
// the lease time is left. See docs/network-boot.md.
package dhcpd
