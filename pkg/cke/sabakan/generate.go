package sabakan

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/openneco/neco/pkg/cke"
)

// Errors of Generate; the engine reports them in its status and tries
// again later.
var (
	// ErrTooManyVanished: half or more of the control planes are no longer
	// in sabakan; replacing them would lose the Kubernetes etcd's quorum,
	// so nothing is changed.
	ErrTooManyVanished = errors.New("half or more of the control planes are gone from sabakan")
	// ErrNoMachine: not enough healthy machines for the control planes.
	ErrNoMachine = errors.New("no healthy machine for a control plane")
)

// Input is everything Generate decides from.
type Input struct {
	// Template is the validated cluster.yml template (ValidateTemplate).
	Template *cke.Cluster
	// Current is the cluster.yml in force; nil when there is none.
	Current *cke.Cluster
	// Machines are sabakan's machines, boot servers excluded.
	Machines    []Machine
	Constraints *cke.Constraints
	Now         time.Time
}

// Result is Generate's answer.
type Result struct {
	// Cluster is the cluster.yml to store; nil when Current is right.
	Cluster *cke.Cluster
	// Changes say what changed and why, one line each.
	Changes []string
	// Warnings are machines or labels that were left out, and why.
	Warnings []string
}

// Generate computes cluster.yml from the machines. Who is a node sticks:
// a machine stays a control plane or a worker until a rule moves it. In
// order:
//
//  1. Nodes whose machine is gone from sabakan are removed, unless half or
//     more of the control planes would go (ErrTooManyVanished).
//  2. One control plane whose machine is retiring or retired, or has been
//     unreachable or unhealthy for wait-seconds-to-replace-control-plane,
//     becomes a worker and a healthy machine takes its place, while the
//     other control planes are healthy enough to keep the etcd quorum.
//  3. Surplus control planes become workers, the least fit first.
//  4. Missing control planes are chosen among healthy unused machines, else
//     promoted from healthy workers: the rack with the fewest control
//     planes first, then the machine with the longest life left.
//  5. Every healthy unused machine becomes a worker (up to maximum-workers).
//  6. Workers retired for wait-seconds-to-remove-retired are removed while
//     the workers stay at least minimum-workers-rate percent of the
//     machines that could be workers (not retired, of a role with a worker
//     template, not control planes): a cluster short of workers keeps
//     them.
//
// Every node is then rendered from its template and its machine (labels,
// annotations, the state taint: unreachable → NoSchedule, retiring and
// retired → NoExecute); a template change therefore reaches every node.
// The engine itself labels control planes (node-role.kubernetes.io/
// control-plane).
func Generate(in Input) (*Result, error) {
	g := newGenerator(in)
	res := &Result{}
	steps := []func() error{g.removeVanished, g.replaceFailedControlPlane, g.demoteSurplus, g.addControlPlanes, g.addWorkers, g.removeRetired}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	c := g.render()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sabakan: generated cluster.yml: %w", err)
	}
	if err := in.Constraints.Check(c); err != nil {
		return nil, fmt.Errorf("sabakan: generated cluster.yml: %w", err)
	}
	res.Warnings = g.warnings
	if in.Current != nil && sameCluster(in.Current, c) {
		return res, nil
	}
	res.Changes = g.changes
	if in.Current != nil {
		res.Changes = append(res.Changes, differences(in.Current, c)...)
	}
	if len(res.Changes) == 0 {
		res.Changes = []string{"cluster settings from the template"}
	}
	res.Cluster = c
	return res, nil
}

// differences describes how the nodes that both cur and next have differ.
func differences(cur, next *cke.Cluster) []string {
	var out []string
	for _, n := range next.Nodes {
		c := cur.Node(n.Address)
		if c == nil || c.ControlPlane != n.ControlPlane {
			continue // a change of membership, described by its rule
		}
		if sameNode(c, n) {
			continue
		}
		switch was, now := stateTaint(c), stateTaint(n); {
		case was != now && now != "":
			out = append(out, fmt.Sprintf("taint %s %s", n.Address, now))
		case was != now:
			out = append(out, fmt.Sprintf("untaint %s (was %s)", n.Address, was))
		default:
			out = append(out, fmt.Sprintf("labels, annotations or taints of %s from its machine and template", n.Address))
		}
	}
	return out
}

func sameNode(a, b *cke.Node) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// stateTaint is n's machine-state taint as key=value:effect, or "".
func stateTaint(n *cke.Node) string {
	for _, t := range n.Taints {
		if t.Key == TaintState {
			return t.Key + "=" + t.Value + ":" + t.Effect
		}
	}
	return ""
}

type generator struct {
	in       Input
	machines map[string]*Machine // by address
	cpTmpl   *cke.Node
	workerBy map[string]*cke.Node // worker templates by role ("" for any)

	cps, workers []*Machine
	changes      []string
	warnings     []string
}

func newGenerator(in Input) *generator {
	g := &generator{in: in, machines: map[string]*Machine{}, workerBy: map[string]*cke.Node{}}
	for i := range in.Machines {
		m := &in.Machines[i]
		switch {
		case m.Address() == "":
			g.warn("machine %s: no IPv4 address; left out", m.Spec.Serial)
		case g.machines[m.Address()] != nil:
			g.warn("machine %s: address %s is also machine %s's; left out", m.Spec.Serial, m.Address(), g.machines[m.Address()].Spec.Serial)
		default:
			g.machines[m.Address()] = m
		}
	}
	for _, n := range in.Template.Nodes {
		if n.ControlPlane {
			g.cpTmpl = n
		} else {
			g.workerBy[n.Labels[LabelRole]] = n
		}
	}
	return g
}

func (g *generator) warn(format string, args ...any) {
	g.warnings = append(g.warnings, fmt.Sprintf(format, args...))
}

func (g *generator) change(format string, args ...any) {
	g.changes = append(g.changes, fmt.Sprintf(format, args...))
}

// workerTemplate is the template for m as a worker; nil when no worker
// template is for its role.
func (g *generator) workerTemplate(m *Machine) *cke.Node {
	if len(g.workerBy) == 1 {
		if t, ok := g.workerBy[""]; ok {
			return t
		}
	}
	return g.workerBy[m.Spec.Role]
}

func (g *generator) cpCandidate(m *Machine) bool {
	role := g.cpTmpl.Labels[LabelRole]
	return m.healthy() && (role == "" || role == m.Spec.Role)
}

func (g *generator) used(m *Machine) bool {
	return slices.Contains(g.cps, m) || slices.Contains(g.workers, m)
}

// unused are the healthy machines that are no node, in address order.
func (g *generator) unused() []*Machine {
	var out []*Machine
	for _, a := range slices.Sorted(maps.Keys(g.machines)) {
		if m := g.machines[a]; m.healthy() && !g.used(m) {
			out = append(out, m)
		}
	}
	return out
}

func (g *generator) removeVanished() error {
	if g.in.Current == nil {
		return nil
	}
	currentCPs := g.in.Current.ControlPlanes()
	for _, n := range currentCPs {
		if m := g.machines[n.Address]; m != nil {
			g.cps = append(g.cps, m)
		} else {
			g.change("remove control plane %s: not in sabakan", n.Address)
		}
	}
	if len(currentCPs) > 0 && len(g.cps)*2 <= len(currentCPs) {
		return fmt.Errorf("sabakan: %w: %d of %d left", ErrTooManyVanished, len(g.cps), len(currentCPs))
	}
	for _, n := range g.in.Current.Workers() {
		switch m := g.machines[n.Address]; {
		case m == nil:
			g.change("remove worker %s: not in sabakan", n.Address)
		case g.workerTemplate(m) == nil:
			g.change("remove worker %s: no worker template for role %q", n.Address, m.Spec.Role)
		default:
			g.workers = append(g.workers, m)
		}
	}
	return nil
}

// failed reports whether control plane m must be replaced, and why.
func (g *generator) failed(m *Machine) (string, bool) {
	wait := time.Duration(g.in.Constraints.WaitSecondsToReplaceControlPlane) * time.Second
	switch m.Status.State {
	case StateRetiring, StateRetired:
		return "it is " + string(m.Status.State), true
	case StateUnreachable, StateUnhealthy:
		if m.since() >= wait {
			return fmt.Sprintf("%s for %s", m.Status.State, m.since().Round(time.Second)), true
		}
	}
	return "", false
}

func (g *generator) replaceFailedControlPlane() error {
	healthy := 0
	var worst *Machine
	var why string
	for _, m := range g.cps {
		if m.healthy() {
			healthy++
		}
		if w, ok := g.failed(m); ok && (worst == nil || m.since() > worst.since()) {
			worst, why = m, w
		}
	}
	// The members left must keep the quorum while the new one joins.
	if worst == nil || healthy*2 <= len(g.cps) {
		return nil
	}
	rest := slices.DeleteFunc(slices.Clone(g.cps), func(m *Machine) bool { return m == worst })
	next, promoted := g.pickControlPlane(rest)
	if next == nil {
		return nil // no machine to take its place: keep it
	}
	g.cps = append(rest, next)
	if promoted {
		g.workers = slices.DeleteFunc(g.workers, func(m *Machine) bool { return m == next })
	}
	g.change("replace control plane %s (%s) with %s (rack %d)", worst.Address(), why, next.Address(), next.Spec.Rack)
	g.demote(worst)
	return nil
}

func (g *generator) demoteSurplus() error {
	for len(g.cps) > g.in.Constraints.ControlPlaneCount {
		// The least fit goes: unhealthy first, then the lowest score.
		counts := rackCounts(g.cps)
		least := slices.MinFunc(g.cps, func(a, b *Machine) int {
			return cmp.Or(
				cmp.Compare(fitness(a, counts, g.in.Now), fitness(b, counts, g.in.Now)),
				cmp.Compare(b.Address(), a.Address()))
		})
		g.cps = slices.DeleteFunc(g.cps, func(m *Machine) bool { return m == least })
		g.change("demote control plane %s: more than control-plane-count %d", least.Address(), g.in.Constraints.ControlPlaneCount)
		g.demote(least)
	}
	return nil
}

// demote makes a former control plane a worker, or takes it out of the
// cluster when no worker template is for its role.
func (g *generator) demote(m *Machine) {
	if g.workerTemplate(m) == nil {
		g.change("remove %s: no worker template for role %q", m.Address(), m.Spec.Role)
		return
	}
	g.workers = append(g.workers, m)
}

func (g *generator) addControlPlanes() error {
	for len(g.cps) < g.in.Constraints.ControlPlaneCount {
		m, promoted := g.pickControlPlane(g.cps)
		if m == nil {
			return fmt.Errorf("sabakan: %w: %d of control-plane-count %d", ErrNoMachine, len(g.cps), g.in.Constraints.ControlPlaneCount)
		}
		g.cps = append(g.cps, m)
		if promoted {
			g.workers = slices.DeleteFunc(g.workers, func(w *Machine) bool { return w == m })
			g.change("promote worker %s to control plane (rack %d)", m.Address(), m.Spec.Rack)
		} else {
			g.change("add control plane %s (rack %d)", m.Address(), m.Spec.Rack)
		}
	}
	return nil
}

// pickControlPlane chooses a new control plane to join cps: among healthy
// unused machines, else among healthy workers (promoted reports which).
func (g *generator) pickControlPlane(cps []*Machine) (m *Machine, promoted bool) {
	counts := rackCounts(cps)
	best := func(ms []*Machine) *Machine {
		ms = slices.DeleteFunc(slices.Clone(ms), func(m *Machine) bool { return !g.cpCandidate(m) || slices.Contains(cps, m) })
		if len(ms) == 0 {
			return nil
		}
		return slices.MaxFunc(ms, func(a, b *Machine) int {
			return cmp.Or(cmp.Compare(score(a, counts, g.in.Now), score(b, counts, g.in.Now)), cmp.Compare(b.Address(), a.Address()))
		})
	}
	if m := best(g.unused()); m != nil {
		return m, false
	}
	if m := best(g.workers); m != nil {
		return m, true
	}
	return nil, false
}

func (g *generator) addWorkers() error {
	limit := g.in.Constraints.MaximumWorkers
	for _, m := range g.unused() {
		if g.workerTemplate(m) == nil {
			continue
		}
		if limit > 0 && len(g.workers) >= limit {
			g.warn("machine %s: not added, maximum-workers %d reached", m.Address(), limit)
			continue
		}
		g.workers = append(g.workers, m)
		g.change("add worker %s (rack %d)", m.Address(), m.Spec.Rack)
	}
	return nil
}

func (g *generator) removeRetired() error {
	wait := time.Duration(g.in.Constraints.WaitSecondsToRemoveRetired) * time.Second
	// The machines that count: those that could be workers (not retired,
	// of a role with a worker template, not control planes).
	machines := 0
	for _, m := range g.machines {
		if m.Status.State != StateRetired && g.workerTemplate(m) != nil && !slices.Contains(g.cps, m) {
			machines++
		}
	}
	for _, m := range slices.Clone(g.workers) {
		if m.Status.State != StateRetired || m.since() < wait {
			continue
		}
		if (len(g.workers)-1)*100 < g.in.Constraints.MinimumWorkersRate*machines {
			g.warn("retired worker %s kept: removing it would leave fewer workers than minimum-workers-rate %d%% of the %d machines that could be workers",
				m.Address(), g.in.Constraints.MinimumWorkersRate, machines)
			continue
		}
		g.workers = slices.DeleteFunc(g.workers, func(w *Machine) bool { return w == m })
		g.change("remove worker %s: retired for %s", m.Address(), m.since().Round(time.Second))
	}
	return nil
}

// render builds cluster.yml: the template's settings, the control planes
// then the workers, each in address order.
func (g *generator) render() *cke.Cluster {
	c := *g.in.Template
	c.Nodes = nil
	byAddr := func(a, b *Machine) int { return cmp.Compare(a.Address(), b.Address()) }
	for _, m := range slices.SortedFunc(slices.Values(g.cps), byAddr) {
		c.Nodes = append(c.Nodes, g.node(m, g.cpTmpl, true))
	}
	for _, m := range slices.SortedFunc(slices.Values(g.workers), byAddr) {
		c.Nodes = append(c.Nodes, g.node(m, g.workerTemplate(m), false))
	}
	return &c
}

// Labels, annotations and the taint the generator puts on nodes; the
// names are the reference engine's, so manifests written for it work.
const (
	labelPrefix      = "cke.cybozu.com/"
	sabakanLabel     = "sabakan.cke.cybozu.com/"
	zoneLabel        = "topology.kubernetes.io/zone"
	roleLabelPrefix  = "node-role.kubernetes.io/"
	TaintState       = "cke.cybozu.com/state"
	annotationPrefix = "cke.cybozu.com/"
)

func (g *generator) node(m *Machine, t *cke.Node, cp bool) *cke.Node {
	n := &cke.Node{Address: m.Address(), User: t.User, ControlPlane: cp,
		Labels: map[string]string{}, Annotations: map[string]string{}}
	for _, l := range m.Spec.Labels {
		k := sabakanLabel + l.Name
		if err := cke.ValidateLabel(k, l.Value); err != nil {
			g.warn("machine %s: sabakan label not copied: %v", m.Spec.Serial, err)
			continue
		}
		n.Labels[k] = l.Value
	}
	maps.Copy(n.Labels, t.Labels)
	n.Labels[labelPrefix+"rack"] = strconv.Itoa(m.Spec.Rack)
	n.Labels[labelPrefix+"index-in-rack"] = strconv.Itoa(m.Spec.IndexInRack)
	n.Labels[labelPrefix+"role"] = m.Spec.Role
	n.Labels[labelPrefix+"retire-month"] = m.Spec.RetireDate.UTC().Format("2006-01")
	n.Labels[labelPrefix+"retire-year"] = strconv.Itoa(m.Spec.RetireDate.UTC().Year())
	n.Labels[labelPrefix+"register-month"] = m.Spec.RegisterDate.UTC().Format("2006-01")
	n.Labels[zoneLabel] = "rack" + strconv.Itoa(m.Spec.Rack)
	if m.Spec.Role != "" {
		n.Labels[roleLabelPrefix+m.Spec.Role] = "true"
	}
	maps.Copy(n.Annotations, t.Annotations)
	n.Annotations[annotationPrefix+"serial"] = m.Spec.Serial
	n.Annotations[annotationPrefix+"register-date"] = m.Spec.RegisterDate.UTC().Format(time.RFC3339)
	n.Annotations[annotationPrefix+"retire-date"] = m.Spec.RetireDate.UTC().Format(time.RFC3339)
	n.Taints = slices.Clone(t.Taints)
	switch m.Status.State {
	case StateUnreachable:
		n.Taints = append(n.Taints, cke.Taint{Key: TaintState, Value: "unreachable", Effect: "NoSchedule"})
	case StateRetiring:
		n.Taints = append(n.Taints, cke.Taint{Key: TaintState, Value: "retiring", Effect: "NoExecute"})
	case StateRetired:
		n.Taints = append(n.Taints, cke.Taint{Key: TaintState, Value: "retired", Effect: "NoExecute"})
	}
	return n
}

// sameCluster compares two cluster.yml as stored (JSON: nil and empty
// maps alike, maps in key order).
func sameCluster(a, b *cke.Cluster) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
