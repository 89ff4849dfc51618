// Package integration tests bootstrap end to end with real parts: the neco
// binary, etcd and Vault processes, three to four simulated boot servers on
// distinct loopback addresses (127.x.y.1–4, chosen per run) with their own
// directories, certificates and ports. It has no non-test code.
package integration
