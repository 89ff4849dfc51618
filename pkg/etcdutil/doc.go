// Package etcdutil is the one way neco programs talk to etcd.
//
// It builds clients from a configuration compatible with cybozu-go/etcdutil
// (YAML keys and -etcd-* flags), scopes every client to its key prefix with
// clientv3/namespace, bounds every KV call with a per-call timeout, and
// provides the concurrency primitives the daemons share: optimistic updates
// guarded by ModRevision, leader election with leader-fenced transactions,
// and a schema version key migrated under an etcd mutex.
package etcdutil
