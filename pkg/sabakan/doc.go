// Package sabakan is the boot server's domain model: machines and their
// life-cycle, the IPAM configuration and its address formulas, the DHCP
// configuration, machine queries and audit entries. It does no I/O; the
// store, web, DHCP and client packages below it build on these types.
//
// JSON shapes follow the reference boot server (cybozu-go/sabakan v3) so that
// its clients work unchanged.
package sabakan
