// Package podnet is the data center's pod network: routed, with no overlay,
// after cybozu-go/coil. Pod addresses come from cluster-scoped
// AddressPools, handed to nodes in AddressBlocks; each node's daemon
// allocates its pods' addresses from its blocks (package ipam) and keeps
// one route per block it owns in a kernel table that the node's BGP agent
// announces.
//
// This package holds the API both share: the custom resources' Go types,
// their CustomResourceDefinitions (CRDs, InstallCRDs), their labels and the
// namespace annotation that picks a pool, and the checks a reader of the
// API makes of what it reads (ValidatePool, Overlaps).
package podnet
