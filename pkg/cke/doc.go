// Package cke holds the Kubernetes engine's domain: the cluster
// declaration (cluster.yml), its validation, the constraints that guard it,
// the services the engine runs on nodes and the status the engine gathers
// from them. Nothing here does I/O; the decision (pkg/cke/decide), the etcd
// storage (pkg/cke/storage), the node transport (pkg/cke/nodeexec) and the
// loop (pkg/cke/server) build on these types.
package cke
