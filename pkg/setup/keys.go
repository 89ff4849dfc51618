package setup

import "strconv"

// Keys under /neco/ that bootstrap owns (the CD keys are in
// pkg/neco/storage). docs/etcd.md documents them.
const (
	// KeyUnsealKey holds Vault's unseal key (hex). Only etcd's root user
	// can read it once authentication is on.
	KeyUnsealKey = "vault-unseal-key"
	// KeySetupRootToken holds Vault's initial root token while a setup
	// runs; the leader revokes and deletes it when setup finishes.
	KeySetupRootToken = "setup/vault-root-token"
	finishPrefix      = "finish/"
)

// finishKey records the last setup stage a server finished.
func finishKey(lrn int) string { return finishPrefix + strconv.Itoa(lrn) }
