// Package storage is all etcd access of neco's continuous delivery. Every
// key is defined in keys.go and documented in docs/etcd.md. Clients are
// expected to be scoped to the /neco/ prefix (etcdutil.New with that prefix),
// so keys here are relative.
//
// Readers take a Snapshot, read at one revision in one transaction; writers
// guard every write with the revisions of the snapshot they decided on, and
// the updater additionally with its leader key.
package storage
