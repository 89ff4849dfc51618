package sabakan

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/openneco/neco/pkg/cke"
)

// LabelRole is the node label that carries the machine's role; on a node
// template it selects the machines the template is for.
const LabelRole = "cke.cybozu.com/role"

// ParseTemplate reads a cluster.yml template (YAML or JSON, unknown fields
// refused) and validates it.
func ParseTemplate(data []byte) (*cke.Cluster, error) {
	t, err := cke.ParseCluster(data)
	if err != nil {
		return nil, err
	}
	return t, ValidateTemplate(t)
}

// ValidateTemplate checks a template: a cluster.yml whose nodes have no
// address, exactly one of them the control plane's template and at least
// one a worker's; with several worker templates each names the machine
// role it is for (label cke.cybozu.com/role), and no two the same. The
// rest must be a valid cluster.yml.
func ValidateTemplate(t *cke.Cluster) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cps, workers := 0, 0
	roles := map[string]int{}
	for i, n := range t.Nodes {
		if n == nil {
			continue // Validate reports it
		}
		if n.Address != "" {
			bad("nodes[%d].address %q: a template has none (machines give the addresses)", i, n.Address)
		}
		if n.Hostname != "" {
			bad("nodes[%d].hostname %q: a template has none (nodes are named by address)", i, n.Hostname)
		}
		if n.ControlPlane {
			cps++
			continue
		}
		workers++
		role := n.Labels[LabelRole]
		if j, dup := roles[role]; dup {
			bad("nodes[%d]: worker template for role %q again (also nodes[%d])", i, role, j)
		}
		roles[role] = i
	}
	if cps != 1 {
		bad("nodes: %d control-plane templates, want exactly 1", cps)
	}
	if workers == 0 {
		bad("nodes: no worker template")
	}
	if _, unnamed := roles[""]; unnamed && workers > 1 {
		bad("nodes: with several worker templates, each needs a %s label", LabelRole)
	}

	// The rest is checked as the cluster it would give.
	probe := *t
	probe.Nodes = make([]*cke.Node, len(t.Nodes))
	addr := netip.MustParseAddr("198.51.100.1")
	for i, n := range t.Nodes {
		if n != nil {
			c := *n
			c.Address, addr = addr.String(), addr.Next()
			n = &c
		}
		probe.Nodes[i] = n
	}
	if err := probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w template: %w", cke.ErrInvalid, errors.Join(errs...))
	}
	return nil
}
