// Package storage is all etcd access under /neco/: the keys of neco's
// continuous delivery, of the bootstrap (Vault's unseal key and initial
// root token, setup's stage records), the repair loop's records
// (repair.go, pkg/repair) and the prefixes of the elections of the updater,
// the workers and the state setter. It is the only package
// that names a key under /neco/. Every key is defined in keys.go and
// documented in docs/etcd.md. Clients are expected to be scoped to the
// /neco/ prefix (etcdutil.New with that prefix), so keys here are relative.
//
// Readers take a Snapshot, read at one revision in one transaction; writers
// guard every write with the revisions of the snapshot they decided on, and
// the updater additionally with its leader key. The repair loop's records,
// written by its leader alone, are fenced by the leader key only.
package storage
