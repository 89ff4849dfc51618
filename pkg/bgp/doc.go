// Package bgp is the domain of the BGP node agent, without I/O.
//
// It says who a machine is on the network (Identity: its node address, its
// two links to the top-of-rack switches and its AS number, derived from the
// sabakan Machine and the IPAM configuration and checked against both),
// how AS numbers are given out (ASPlan), how fast BGP and BFD react
// (Timers), what the node's BIRD configuration is (RenderNode), and whether
// the node's network is ready (Decide over a Snapshot of BIRD's and the
// kernel's state).
//
// The I/O lives below: pkg/bgp/bird talks to BIRD, pkg/bgp/netconf to the
// kernel, pkg/bgp/agent runs the loop, and pkg/bgp/routers generates the
// router side (ToR, spine, core) of test networks.
package bgp
