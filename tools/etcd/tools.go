//go:build tools

// Package tools pins the etcd server and etcdctl that neco ships and tests
// against. They are kept out of the main module so that its dependency graph
// stays the project's own; `make etcd` builds them into bin/.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
