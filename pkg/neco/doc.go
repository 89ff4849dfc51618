// Package neco is the domain of neco's continuous delivery, with no I/O:
// release versions and their order, the update request the updater writes
// and the per-server statuses the workers post, operator configuration keys
// with their validation, and release-time windows.
//
// etcd access lives in pkg/neco/storage; the decisions over these types live
// in pkg/updater and pkg/worker.
package neco
