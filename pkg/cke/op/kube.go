package op

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/cke/resources"
	"github.com/openneco/neco/pkg/cke/units"
)

// ResourceHash identifies a resource's manifest.
func ResourceHash(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return hex.EncodeToString(sum[:])
}

func (e *Env) applySteps(keys []string) []Step {
	return []Step{{"apply resources", func(ctx context.Context) error {
		applied := maps.Clone(e.Applied)
		if applied == nil {
			applied = map[string]string{}
		}
		var firstErr error
		for _, k := range resources.Sorted(keys) {
			m, ok := e.Resources[k]
			if !ok {
				continue
			}
			if err := e.Kube.Apply(ctx, m); err != nil {
				firstErr = fmt.Errorf("%s: %w", k, err)
				break
			}
			applied[k] = ResourceHash(m)
		}
		// Forget resources no longer wanted (they are left in place).
		for k := range applied {
			if _, ok := e.Resources[k]; !ok {
				delete(applied, k)
			}
		}
		if err := e.Kube.SetApplied(ctx, applied); err != nil && firstErr == nil {
			firstErr = err
		}
		return firstErr
	}}}
}

func (e *Env) endpointSteps(addrs []string) []Step {
	return []Step{{"set default/kubernetes", func(ctx context.Context) error {
		return e.Kube.SetEndpoints(ctx, "default", "kubernetes", addrs, units.APIServerPort)
	}}}
}

func (e *Env) updateNodeSteps(names []string) []Step {
	return []Step{{"update node metadata", func(ctx context.Context) error {
		nodes, err := e.Kube.Nodes(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			var n *cke.Node
			for _, cn := range e.Cluster.Nodes {
				if cn.Nodename() == name {
					n = cn
				}
			}
			for i := range nodes {
				if nodes[i].Name != name || n == nil {
					continue
				}
				labels, annotations, taints := decide.PatchNode(e.Cluster, n, &nodes[i])
				if err := e.Kube.PatchNodeMetadata(ctx, name, labels, annotations, taints); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
		return nil
	}}}
}

func (e *Env) removeNodeSteps(names []string) []Step {
	return []Step{{"delete nodes", func(ctx context.Context) error {
		for _, name := range names {
			if err := e.Kube.DeleteNode(ctx, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}}}
}

// forgetSteps stop every engine unit on nodes that left cluster.yml;
// unreachable nodes are skipped (they are forgotten all the same).
func (e *Env) forgetSteps(nodes []string) []Step {
	return []Step{{"stop every service", func(ctx context.Context) error {
		for _, addr := range nodes {
			if _, err := e.Nodes.Run(ctx, addr, stopCommand(cke.AllServices...), nil); err != nil {
				e.log().Warn("could not stop the services of a node that left the cluster", "node", addr, "error", err)
			}
		}
		return nil
	}}}
}

// Steps returns the steps of o.
func (e *Env) Steps(o decide.Op) ([]Step, error) {
	switch o.Kind {
	case decide.StartService:
		st, err := e.newStart(o.Service, o.Nodes)
		if err != nil {
			return nil, err
		}
		return st.steps(), nil
	case decide.StopService:
		return e.stopSteps(o.Service, o.Nodes), nil
	case decide.EtcdBootstrap:
		return e.bootstrapSteps(o.Nodes)
	case decide.EtcdWait:
		return []Step{e.etcdWaitStep()}, nil
	case decide.EtcdAddMember:
		return e.addMemberSteps(o.Nodes[0])
	case decide.EtcdRemoveMember:
		return e.removeMemberSteps(o.MemberID, o.Nodes[0]), nil
	case decide.EtcdDestroy:
		return e.destroySteps(o.Nodes), nil
	case decide.ApplyResources:
		return e.applySteps(o.Names), nil
	case decide.UpdateEndpoints:
		return e.endpointSteps(o.Nodes), nil
	case decide.UpdateNodes:
		return e.updateNodeSteps(o.Names), nil
	case decide.RemoveNodes:
		return e.removeNodeSteps(o.Names), nil
	case decide.ForgetNodes:
		return e.forgetSteps(o.Nodes), nil
	}
	return nil, fmt.Errorf("op: unknown operation %q", o.Kind)
}
