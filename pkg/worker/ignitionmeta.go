package worker

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/openneco/neco/pkg/bootserver"
	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/neco/storage"
)

// Metadata keys of the Ignition templates (see ignitions/common).
const (
	// MetaRegistries lists host:port of every boot server's registry, in
	// LRN order: containerd's mirrors of registry.k8s.io on the nodes.
	MetaRegistries = "registries"
	// MetaRegistryCA is the PEM of the CA that signs the registries'
	// certificates (the boot servers' server CA).
	MetaRegistryCA = "registry_ca"
	// MetaCKESSHKey is the Kubernetes engine's SSH public key (an
	// authorized_keys line): the engine reaches the nodes as root with it.
	MetaCKESSHKey = "cke_ssh_key"
)

// RegistryMirrors is host:port of the registry of each of lrns (sorted),
// with the addresses of cluster.
func RegistryMirrors(cluster *bootserver.Cluster, lrns []int, port int) ([]string, error) {
	lrns = slices.Sorted(slices.Values(lrns))
	out := make([]string, 0, len(lrns))
	for _, lrn := range lrns {
		s, err := cluster.Lookup(lrn)
		if err != nil {
			return nil, err
		}
		out = append(out, net.JoinHostPort(s.Address, strconv.Itoa(port)))
	}
	return out, nil
}

// IgnitionMeta is the metadata a release's Ignition templates are uploaded
// with: the registries of every registered boot server and their CA
// (caFile), and the Kubernetes engine's SSH public key (from cke, which
// neco setup's ckecli vault init fills). A boot server registered later is
// in the next release's templates; until then nodes pull from the others.
func IgnitionMeta(ctx context.Context, st *storage.Storage, cke *ckestorage.Storage, cluster *bootserver.Cluster, caFile string, port int) (map[string]any, error) {
	servers, err := st.BootServerValues(ctx)
	if err != nil {
		return nil, err
	}
	lrns := make([]int, 0, len(servers))
	for lrn := range servers {
		lrns = append(lrns, lrn)
	}
	mirrors, err := RegistryMirrors(cluster, lrns, port)
	if err != nil {
		return nil, err
	}
	if len(mirrors) == 0 {
		return nil, fmt.Errorf("no boot server is registered: no registry for the nodes")
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("the registries' CA: %w", err)
	}
	key, err := cke.GetSSHPublicKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes engine's SSH key for the nodes: %w", err)
	}
	regs := make([]any, len(mirrors))
	for i, m := range mirrors {
		regs[i] = m
	}
	return map[string]any{MetaRegistries: regs, MetaRegistryCA: string(ca), MetaCKESSHKey: key}, nil
}
