// Package integration holds the virtual data center tool's tests that need
// root and the real parts: network namespaces, bridges, BIRD, dnsmasq,
// debootstrap and systemd-nspawn. They build small data centers with unique
// instance names, check them, and assert that destroying them leaves
// nothing behind. On a machine without root or the packages they skip; in
// CI (CI=true) they fail instead.
//
// Cost: about 10 s with a cached root tree; the first run on a machine
// builds the tree with debootstrap (about a minute).
package integration
