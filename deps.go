//go:build tools

// This file pins the modules the project's packages are built on while they
// are being written in parallel, so that concurrent work never races on
// go.mod. It is removed once every module here is imported for real.
package neco

import (
	_ "github.com/coreos/ignition/v2/config"
	_ "github.com/cybozu-go/well"
	_ "github.com/google/go-github/v50/github"
	_ "github.com/graph-gophers/graphql-go"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/hashicorp/vault/api"
	_ "github.com/insomniacslk/dhcp/dhcpv4/server4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "golang.org/x/oauth2"
	_ "sigs.k8s.io/yaml"
)
