// Package decide is the Kubernetes engine's decision: a pure function from
// a snapshot (cluster.yml, what each node runs, the etcd and Kubernetes
// clusters as seen at one moment) to the next operations. It does no I/O;
// the server gathers the snapshot and pkg/cke/op carries the operations
// out. Phases are checked in a fixed order and the first one with work to
// do wins, so that, for example, no API server starts before etcd has a
// quorum and no etcd member is replaced while a control plane is
// unreachable.
package decide

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/cke"
)

// Snapshot is everything one decision looks at.
type Snapshot struct {
	Cluster *cke.Cluster
	// Nodes are the statuses of the nodes of Cluster and of Former, by
	// address; a node missing here is unreachable.
	Nodes map[string]*cke.NodeStatus
	// Former are nodes the engine ran services on that cluster.yml no
	// longer lists.
	Former []string
	// Want is the parameter hash each service should run with, by node
	// address (pkg/cke/units computes it from Cluster).
	Want map[string]map[cke.Service]string
	// WantResources are the hashes of the engine's Kubernetes resources
	// by key.
	WantResources map[string]string
	Etcd          cke.EtcdStatus
	Kube          cke.KubeStatus
	Now           time.Time
	// RenewBefore: a certificate that expires sooner is renewed.
	RenewBefore time.Duration
}

// Result is a decision.
type Result struct {
	Phase Phase `json:"phase"`
	Ops   []Op  `json:"ops,omitempty"`
	// Waiting says what holds the engine back when there is no operation
	// before PhaseCompleted.
	Waiting string `json:"waiting,omitempty"`
}

// DecideOps returns the next operations.
func DecideOps(s *Snapshot) Result {
	d := decider{s}
	for _, phase := range []struct {
		name Phase
		f    func() ([]Op, string)
	}{
		{PhaseRivers, d.rivers},
		{PhaseEtcdBootstrap, d.etcdBootstrap},
		{PhaseEtcdStart, d.etcdStart},
		{PhaseEtcdWait, d.etcdWait},
		{PhaseK8sStart, d.k8sStart},
		{PhaseEtcdMaintain, d.etcdMaintain},
		{PhaseK8sMaintain, d.k8sMaintain},
		{PhaseStopCP, d.stopControlPlane},
		{PhaseForget, d.forget},
	} {
		ops, waiting := phase.f()
		if len(ops) > 0 || waiting != "" {
			return Result{Phase: phase.name, Ops: ops, Waiting: waiting}
		}
	}
	return Result{Phase: PhaseCompleted}
}

type decider struct{ *Snapshot }

func (d decider) reachable(addr string) bool {
	st := d.Nodes[addr]
	return st != nil && st.Reachable
}

func (d decider) service(addr string, s cke.Service) cke.ServiceStatus {
	if st := d.Nodes[addr]; st != nil {
		return st.Services[s]
	}
	return cke.ServiceStatus{}
}

// why returns why s on addr must be (re)started, or "".
func (d decider) why(addr string, s cke.Service) string {
	st := d.service(addr, s)
	switch {
	case !st.Running:
		return "not running"
	case st.Hash != d.Want[addr][s]:
		return "parameters changed"
	case !st.CertNotAfter.IsZero() && st.CertNotAfter.Sub(d.Now) < d.RenewBefore:
		return "certificate expires " + st.CertNotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}

// starts returns the StartService op for s on those of nodes that need
// it, or nothing. With oneAtATime only the first such node is restarted
// while the service runs everywhere (a rolling restart); nodes where it
// is not running are all started at once.
func (d decider) starts(s cke.Service, nodes []*cke.Node, oneAtATime bool) []Op {
	var down, outdated []string
	reasons := map[string][]string{}
	for _, n := range nodes {
		if _, wanted := d.Want[n.Address][s]; !wanted || !d.reachable(n.Address) {
			continue
		}
		why := d.why(n.Address, s)
		switch why {
		case "":
			continue
		case "not running":
			down = append(down, n.Address)
		default:
			outdated = append(outdated, n.Address)
		}
		reasons[why] = append(reasons[why], n.Address)
	}
	targets := append(down, outdated...)
	if oneAtATime {
		if len(down) > 0 {
			targets = down
		} else if len(outdated) > 1 {
			targets = outdated[:1]
		}
	}
	if len(targets) == 0 {
		return nil
	}
	return []Op{{Kind: StartService, Service: s, Nodes: targets, Reason: reasonOf(reasons, targets)}}
}

// reasonOf describes why targets are in an op, grouped by reason.
func reasonOf(reasons map[string][]string, targets []string) string {
	var parts []string
	for _, why := range slices.Sorted(maps.Keys(reasons)) {
		var on []string
		for _, a := range reasons[why] {
			if slices.Contains(targets, a) {
				on = append(on, a)
			}
		}
		if len(on) > 0 {
			parts = append(parts, why+" on "+strings.Join(on, ","))
		}
	}
	return strings.Join(parts, "; ")
}

func (d decider) unreachable(nodes []*cke.Node) []string {
	var out []string
	for _, n := range nodes {
		if !d.reachable(n.Address) {
			out = append(out, n.Address)
		}
	}
	return out
}

// rivers keeps the node-local load balancer running everywhere first:
// kubelet and kube-proxy reach the API servers only through it.
func (d decider) rivers() ([]Op, string) {
	return d.starts(cke.Rivers, d.Cluster.Nodes, false), ""
}

// etcdBootstrap starts a new etcd cluster on every control plane when no
// node holds etcd data. A bootstrap interrupted half-way (some control
// planes started, no quorum yet) is resumed on the others with the same
// initial cluster.
func (d decider) etcdBootstrap() ([]Op, string) {
	cps := d.Cluster.ControlPlanes()
	var withData, without []string
	for _, addr := range d.known() {
		if st := d.Nodes[addr]; st != nil && st.EtcdData {
			withData = append(withData, addr)
		}
	}
	for _, n := range cps {
		if st := d.Nodes[n.Address]; st == nil || !st.EtcdData {
			without = append(without, n.Address)
		}
	}
	fresh := len(withData) == 0
	resume := !d.Etcd.Reachable && len(withData) > 0 && len(withData) <= len(cps)/2 &&
		!slices.ContainsFunc(withData, func(a string) bool { n := d.Cluster.Node(a); return n == nil || !n.ControlPlane })
	if !fresh && !resume || len(without) == 0 {
		return nil, ""
	}
	if u := d.unreachable(cps); len(u) > 0 {
		return nil, "etcd bootstrap needs every control plane; unreachable: " + strings.Join(u, ",")
	}
	reason := "no node holds etcd data"
	if resume {
		reason = "bootstrap interrupted: etcd data only on " + strings.Join(withData, ",")
	}
	return []Op{{Kind: EtcdBootstrap, Nodes: without, Reason: reason}}, ""
}

// known are the addresses of cluster nodes and former nodes.
func (d decider) known() []string {
	return append(cke.Addresses(d.Cluster.Nodes), d.Former...)
}

// etcdStart starts etcd where a control plane has data but etcd is not
// running (a reboot, a crash), unless the cluster answers and no longer
// counts it as a member.
func (d decider) etcdStart() ([]Op, string) {
	var targets []string
	for _, n := range d.Cluster.ControlPlanes() {
		st := d.Nodes[n.Address]
		if st == nil || !st.Reachable || !st.EtcdData || st.Services[cke.Etcd].Running {
			continue
		}
		if d.Etcd.Reachable && d.Etcd.Member(n.Address) == nil {
			continue
		}
		targets = append(targets, n.Address)
	}
	if len(targets) == 0 {
		return nil, ""
	}
	return []Op{{Kind: StartService, Service: cke.Etcd, Nodes: targets, Reason: "etcd data but not running"}}, ""
}

// etcdWait holds everything that needs etcd until a majority is healthy.
func (d decider) etcdWait() ([]Op, string) {
	if d.Etcd.Healthy() {
		return nil, ""
	}
	// Without a quorum nothing is lost by restarting the members whose
	// parameters or certificates are outdated: certificates that expired
	// while no engine ran would otherwise keep the cluster down for good.
	var stale []*cke.Node
	for _, n := range d.Cluster.ControlPlanes() {
		if st := d.Nodes[n.Address]; st != nil && st.EtcdData && st.Services[cke.Etcd].Running {
			stale = append(stale, n)
		}
	}
	if ops := d.starts(cke.Etcd, stale, false); len(ops) > 0 {
		ops[0].Reason = "no etcd quorum; " + ops[0].Reason
		return ops, ""
	}
	reason := "no etcd member answers"
	if d.Etcd.Reachable {
		reason = "no healthy majority of etcd members"
	}
	return []Op{{Kind: EtcdWait, Reason: reason}}, ""
}

// k8sStart starts or updates the Kubernetes components. API servers are
// restarted one at a time so that the others keep serving. The
// control-plane components start only on control planes whose etcd is a
// voting member: an API server talks to the etcd of the control planes,
// the controller-manager and scheduler to the API servers of the control
// planes (through rivers), and a new control plane's etcd joins in
// etcdMaintain, after this phase.
func (d decider) k8sStart() ([]Op, string) {
	cps := d.Cluster.ControlPlanes()
	var members []*cke.Node
	for _, n := range cps {
		if m := d.Etcd.Member(n.Address); m != nil && m.Voting() && m.Name != "" {
			members = append(members, n)
		}
	}
	var ops []Op
	ops = append(ops, d.starts(cke.APIServer, members, true)...)
	ops = append(ops, d.starts(cke.ControllerManager, members, false)...)
	ops = append(ops, d.starts(cke.Scheduler, members, false)...)
	for _, s := range cke.NodeServices {
		ops = append(ops, d.starts(s, d.Cluster.Nodes, false)...)
	}
	return ops, ""
}

// etcdMaintain changes the etcd membership to the control planes, one
// member at a time and only while every control plane is reachable and
// the change keeps a healthy majority. New members join as learners (they
// do not count for the quorum until promoted), so an addition interrupted
// half-way never costs the cluster its quorum and is simply resumed.
func (d decider) etcdMaintain() ([]Op, string) {
	cps := d.Cluster.ControlPlanes()
	isCP := func(addr string) bool { n := d.Cluster.Node(addr); return n != nil && n.ControlPlane }
	if !d.membershipChanges(isCP) {
		return d.etcdRestarts(cps), ""
	}
	if u := d.unreachable(cps); len(u) > 0 {
		return nil, "etcd membership changes wait for every control plane; unreachable: " + strings.Join(u, ",")
	}
	voters, healthy := d.Etcd.Voters()

	// 1. Remove a member that is not a control plane: learners and
	// unhealthy members first, and never one whose removal leaves no
	// healthy majority.
	var stale []cke.EtcdMember
	for _, m := range d.Etcd.Members {
		if !isCP(m.Address) {
			stale = append(stale, m)
		}
	}
	rank := func(m cke.EtcdMember) int {
		switch {
		case !m.Voting():
			return 0
		case !m.Healthy:
			return 1
		}
		return 2
	}
	sort.SliceStable(stale, func(i, j int) bool { return rank(stale[i]) < rank(stale[j]) })
	if len(stale) > 0 && len(d.Etcd.Members) > 1 {
		m := stale[0]
		left, leftHealthy := voters, healthy
		if m.Voting() {
			left--
			if m.Healthy {
				leftHealthy--
			}
		}
		if left == 0 || leftHealthy <= left/2 {
			return nil, fmt.Sprintf("removing etcd member %s would leave %d healthy of %d", m.Address, leftHealthy, left)
		}
		return []Op{{Kind: EtcdRemoveMember, MemberID: m.ID, Nodes: []string{m.Address},
			Reason: "member " + m.Address + " is not a control plane"}}, ""
	}

	// 2. Wipe etcd from nodes that are no longer members.
	var wipe []string
	for _, addr := range d.known() {
		if !isCP(addr) && d.reachable(addr) && d.Etcd.Member(addr) == nil && d.holdsEtcd(addr) {
			wipe = append(wipe, addr)
		}
	}
	if len(wipe) > 0 {
		return []Op{{Kind: EtcdDestroy, Nodes: wipe, Reason: "not a control plane any more"}}, ""
	}

	// 3. Add (or finish adding) a control plane, once every voting
	// member is healthy.
	for _, n := range cps {
		m := d.Etcd.Member(n.Address)
		if m != nil && m.Voting() && m.Name != "" {
			continue
		}
		if healthy < voters {
			return nil, fmt.Sprintf("adding etcd member %s waits until every member is healthy (%d of %d)", n.Address, healthy, voters)
		}
		reason := "control plane " + n.Address + " is not an etcd member"
		if m != nil {
			reason = "etcd member " + n.Address + " has not started or is still a learner"
		}
		return []Op{{Kind: EtcdAddMember, Nodes: []string{n.Address}, Reason: reason}}, ""
	}
	return d.etcdRestarts(cps), ""
}

// holdsEtcd reports whether addr has etcd data or an etcd unit.
func (d decider) holdsEtcd(addr string) bool {
	st := d.Nodes[addr]
	if st == nil {
		return false
	}
	s := st.Services[cke.Etcd]
	return st.EtcdData || s.Running || s.Hash != ""
}

// membershipChanges reports whether the etcd members differ from the
// control planes or a node that is no member still holds etcd.
func (d decider) membershipChanges(isCP func(string) bool) bool {
	for _, m := range d.Etcd.Members {
		if !isCP(m.Address) || m.Name == "" || !m.Voting() {
			return true
		}
	}
	for _, n := range d.Cluster.ControlPlanes() {
		if d.Etcd.Member(n.Address) == nil {
			return true
		}
	}
	for _, addr := range d.known() {
		if !isCP(addr) && d.reachable(addr) && d.Etcd.Member(addr) == nil && d.holdsEtcd(addr) {
			return true
		}
	}
	return false
}

// etcdRestarts restarts one outdated etcd member while all are healthy.
func (d decider) etcdRestarts(cps []*cke.Node) []Op {
	voters, healthy := d.Etcd.Voters()
	var pick string
	reasons := map[string][]string{}
	for _, n := range cps {
		m := d.Etcd.Member(n.Address)
		why := d.why(n.Address, cke.Etcd)
		if m == nil || !d.reachable(n.Address) || why == "" {
			continue
		}
		// An unhealthy member (a certificate that expired while nobody
		// renewed it, say) goes first: restarting it costs nothing. A
		// healthy one is restarted while a majority stays, or while every
		// other member is healthy (one or two members: the restart is
		// unavoidable and brief).
		left := healthy
		if m.Healthy {
			left--
		}
		if left <= voters/2 && !(m.Healthy && healthy == voters) {
			continue
		}
		if pick == "" || !m.Healthy {
			pick = n.Address
			reasons = map[string][]string{why: {n.Address}}
			if !m.Healthy {
				break
			}
		}
	}
	if pick == "" {
		return nil
	}
	return []Op{{Kind: StartService, Service: cke.Etcd, Nodes: []string{pick}, Reason: reasonOf(reasons, []string{pick})}}
}

// k8sMaintain brings the objects in Kubernetes in line: the engine's
// resources, the default/kubernetes endpoints, node metadata, and nodes
// that left cluster.yml.
func (d decider) k8sMaintain() ([]Op, string) {
	if !d.Kube.Reachable {
		return nil, "no API server answers"
	}
	var ops []Op
	var stale []string
	for _, key := range slices.Sorted(maps.Keys(d.WantResources)) {
		if d.Kube.Resources[key] != d.WantResources[key] {
			stale = append(stale, key)
		}
	}
	if len(stale) > 0 {
		ops = append(ops, Op{Kind: ApplyResources, Names: stale, Reason: "resources not applied or changed"})
	}

	var eps []string
	for _, n := range d.Cluster.ControlPlanes() {
		if d.reachable(n.Address) && d.service(n.Address, cke.APIServer).Running {
			eps = append(eps, n.Address)
		}
	}
	if len(eps) > 0 && !sameSet(eps, d.Kube.Endpoints) {
		ops = append(ops, Op{Kind: UpdateEndpoints, Nodes: eps,
			Reason: fmt.Sprintf("default/kubernetes has %v", d.Kube.Endpoints)})
	}

	kube := map[string]*cke.KubeNode{}
	for i := range d.Kube.Nodes {
		kube[d.Kube.Nodes[i].Name] = &d.Kube.Nodes[i]
	}
	var update []string
	for _, n := range d.Cluster.Nodes {
		if k := kube[n.Nodename()]; k != nil && !NodeMetadataUpToDate(d.Cluster, n, k) {
			update = append(update, n.Nodename())
		}
	}
	if len(update) > 0 {
		ops = append(ops, Op{Kind: UpdateNodes, Names: update, Reason: "labels, annotations or taints differ from cluster.yml"})
	}
	var remove []string
	for _, k := range d.Kube.Nodes {
		if !slices.ContainsFunc(d.Cluster.Nodes, func(n *cke.Node) bool { return n.Nodename() == k.Name }) {
			remove = append(remove, k.Name)
		}
	}
	if len(remove) > 0 {
		ops = append(ops, Op{Kind: RemoveNodes, Names: remove, Reason: "not in cluster.yml"})
	}
	return ops, ""
}

// stopControlPlane stops the control-plane components of demoted nodes,
// and podnet where cluster.yml has no pod network.
func (d decider) stopControlPlane() ([]Op, string) {
	var ops []Op
	for _, s := range cke.ControlPlaneServices {
		var targets []string
		for _, n := range d.Cluster.Workers() {
			if st := d.service(n.Address, s); d.reachable(n.Address) && (st.Running || st.Hash != "") {
				targets = append(targets, n.Address)
			}
		}
		if len(targets) > 0 {
			ops = append(ops, Op{Kind: StopService, Service: s, Nodes: targets, Reason: "not a control plane"})
		}
	}
	var targets []string
	for _, n := range d.Cluster.Nodes {
		_, wanted := d.Want[n.Address][cke.Podnet]
		if st := d.service(n.Address, cke.Podnet); !wanted && d.reachable(n.Address) && (st.Running || st.Hash != "") {
			targets = append(targets, n.Address)
		}
	}
	if len(targets) > 0 {
		ops = append(ops, Op{Kind: StopService, Service: cke.Podnet, Nodes: targets, Reason: "no pod_network in cluster.yml"})
	}
	return ops, ""
}

// forget stops everything on nodes that left cluster.yml and forgets them.
func (d decider) forget() ([]Op, string) {
	if len(d.Former) == 0 {
		return nil, ""
	}
	return []Op{{Kind: ForgetNodes, Nodes: slices.Clone(d.Former), Reason: "not in cluster.yml"}}, ""
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
