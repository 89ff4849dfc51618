package decide

import (
	"fmt"
	"strings"

	"github.com/openneco/neco/pkg/cke"
)

// Kind is what an operation does.
type Kind string

// The operations. Each is carried out by pkg/cke/op, step by step.
const (
	// StartService writes Service's files and unit on Nodes (issuing fresh
	// certificates) and (re)starts it.
	StartService Kind = "start-service"
	// StopService stops Service on Nodes and removes its unit.
	StopService Kind = "stop-service"
	// EtcdBootstrap starts a new etcd cluster on Nodes (every control plane).
	EtcdBootstrap Kind = "etcd-bootstrap"
	// EtcdWait waits until the etcd cluster is healthy.
	EtcdWait Kind = "etcd-wait"
	// EtcdAddMember adds Nodes[0] as a member and starts etcd there.
	EtcdAddMember Kind = "etcd-add-member"
	// EtcdRemoveMember removes member MemberID from the cluster.
	EtcdRemoveMember Kind = "etcd-remove-member"
	// EtcdDestroy stops etcd on Nodes and deletes its data: the node is
	// no longer a member.
	EtcdDestroy Kind = "etcd-destroy"
	// ApplyResources applies the resources named in Keys with
	// server-side apply.
	ApplyResources Kind = "apply-resources"
	// UpdateEndpoints sets default/kubernetes to Nodes.
	UpdateEndpoints Kind = "update-endpoints"
	// UpdateNodes sets labels, annotations and taints of the Kubernetes
	// nodes Names from cluster.yml.
	UpdateNodes Kind = "update-nodes"
	// RemoveNodes deletes the Kubernetes nodes Names.
	RemoveNodes Kind = "remove-nodes"
	// ForgetNodes stops every service on Nodes, which left cluster.yml,
	// and forgets them.
	ForgetNodes Kind = "forget-nodes"
	// UpdateCluster is the sabakan integration storing a new cluster.yml
	// (Nodes, for Reason); DecideOps never returns it.
	UpdateCluster Kind = "update-cluster"
)

// Op is one operation: what to do, where, and why.
type Op struct {
	Kind    Kind        `json:"kind"`
	Service cke.Service `json:"service,omitempty"`
	// Nodes are node addresses.
	Nodes []string `json:"nodes,omitempty"`
	// Names are Kubernetes node names or resource keys.
	Names    []string `json:"names,omitempty"`
	MemberID uint64   `json:"member_id,omitempty"`
	Reason   string   `json:"reason"`
}

// String is a one-line description for logs and ckecli.
func (o Op) String() string {
	var b strings.Builder
	b.WriteString(string(o.Kind))
	if o.Service != "" {
		b.WriteString(" " + string(o.Service))
	}
	if o.MemberID != 0 {
		fmt.Fprintf(&b, " member %x", o.MemberID)
	}
	if len(o.Nodes) > 0 {
		b.WriteString(" on " + strings.Join(o.Nodes, ","))
	}
	if len(o.Names) > 0 {
		b.WriteString(" [" + strings.Join(o.Names, ",") + "]")
	}
	if o.Reason != "" {
		b.WriteString(": " + o.Reason)
	}
	return b.String()
}

// Phase names how far the cluster is from cluster.yml: the first phase
// with work to do.
type Phase string

// The phases, in the order DecideOps checks them.
const (
	PhaseRivers        Phase = "rivers"
	PhaseEtcdBootstrap Phase = "etcd-bootstrap"
	PhaseEtcdStart     Phase = "etcd-start"
	PhaseEtcdWait      Phase = "etcd-wait"
	PhaseK8sStart      Phase = "k8s-start"
	PhaseEtcdMaintain  Phase = "etcd-maintain"
	PhaseK8sMaintain   Phase = "k8s-maintain"
	PhaseStopCP        Phase = "stop-control-plane"
	PhaseForget        Phase = "forget-nodes"
	PhaseCompleted     Phase = "completed"
	// PhaseSabakan is the sabakan integration's, which runs when the
	// cluster is complete (or has no valid cluster.yml).
	PhaseSabakan Phase = "sabakan-integration"
)
