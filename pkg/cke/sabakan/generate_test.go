package sabakan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke"
)

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// mach is a machine in the tests' shorthand: address 10.0.<rack>.<n>.
type mach struct {
	addr  string
	rack  int
	state State
	since time.Duration // in the state
	role  string
	life  time.Duration // until retirement
}

func (m mach) machine() Machine {
	role := m.role
	if role == "" {
		role = "cs"
	}
	state := m.state
	if state == "" {
		state = StateHealthy
	}
	life := m.life
	if life == 0 {
		life = 400 * 24 * time.Hour
	}
	return Machine{
		Spec: MachineSpec{Serial: "s-" + m.addr, Rack: m.rack, IndexInRack: 4, Role: role, IPv4: []string{m.addr},
			Labels:       []Label{{Name: "product", Value: "r640"}},
			RegisterDate: now.Add(-365 * 24 * time.Hour), RetireDate: now.Add(life)},
		Status: MachineStatus{State: state, Duration: m.since.Seconds()},
	}
}

func machines(ms ...mach) []Machine {
	out := make([]Machine, len(ms))
	for i, m := range ms {
		out[i] = m.machine()
	}
	return out
}

func template(workerRoles ...string) *cke.Cluster {
	t := &cke.Cluster{Name: "test", ServiceSubnet: "10.68.0.0/16",
		Nodes: []*cke.Node{{User: "cybozu", ControlPlane: true, Labels: map[string]string{"tmpl": "cp"}}}}
	if len(workerRoles) == 0 {
		workerRoles = []string{""}
	}
	for _, r := range workerRoles {
		n := &cke.Node{User: "cybozu", Labels: map[string]string{"tmpl": "worker"}}
		if r != "" {
			n.Labels[LabelRole] = r
		}
		t.Nodes = append(t.Nodes, n)
	}
	return t
}

func constraints(cps int) *cke.Constraints {
	c := cke.DefaultConstraints()
	c.ControlPlaneCount = cps
	return c
}

// current is a cluster.yml as Generate would have made it from ms with the
// given control planes.
func current(t *testing.T, ms []Machine, cps ...string) *cke.Cluster {
	t.Helper()
	g := newGenerator(Input{Template: template(), Machines: ms, Constraints: constraints(len(cps)), Now: now})
	for _, m := range ms {
		m := g.machines[m.Address()]
		if slices.Contains(cps, m.Address()) {
			g.cps = append(g.cps, m)
		} else {
			g.workers = append(g.workers, m)
		}
	}
	return g.render()
}

// summary is a cluster.yml in one line: control planes | workers, each
// with its state taint.
func summary(c *cke.Cluster) string {
	if c == nil {
		return "(unchanged)"
	}
	node := func(n *cke.Node) string {
		s := n.Address
		for _, t := range n.Taints {
			if t.Key == TaintState {
				s += "!" + t.Value
			}
		}
		return s
	}
	var cps, ws []string
	for _, n := range c.Nodes {
		if n.ControlPlane {
			cps = append(cps, node(n))
		} else {
			ws = append(ws, node(n))
		}
	}
	return strings.Join(cps, ",") + " | " + strings.Join(ws, ",")
}

func TestGenerate(t *testing.T) {
	six := []mach{{addr: "10.0.0.1", rack: 0}, {addr: "10.0.0.2", rack: 0}, {addr: "10.0.1.1", rack: 1},
		{addr: "10.0.1.2", rack: 1}, {addr: "10.0.2.1", rack: 2}, {addr: "10.0.2.2", rack: 2}}
	with := func(ms []mach, change func(ms []mach)) []mach {
		ms = slices.Clone(ms)
		change(ms)
		return ms
	}
	tests := []struct {
		name     string
		ms       []mach
		cur      []string // control planes of the current cluster.yml; nil: none
		curNodes []string // its workers (default: every other machine)
		cons     func(c *cke.Constraints)
		cps      int
		want     string
		wantErr  error
		changes  []string
	}{
		{name: "new: one control plane per rack, every other machine a worker", ms: six, cps: 3,
			want: "10.0.0.1,10.0.1.1,10.0.2.1 | 10.0.0.2,10.0.1.2,10.0.2.2"},
		{name: "new: racks fill evenly", cps: 3,
			ms:   []mach{{addr: "10.0.0.1", rack: 0}, {addr: "10.0.0.2", rack: 0}, {addr: "10.0.0.3", rack: 0}, {addr: "10.0.1.1", rack: 1}},
			want: "10.0.0.1,10.0.0.2,10.0.1.1 | 10.0.0.3"},
		{name: "new: the machine with more life left", cps: 1,
			ms:   []mach{{addr: "10.0.0.1", rack: 0}, {addr: "10.0.0.2", rack: 0, life: 1200 * 24 * time.Hour}},
			want: "10.0.0.2 | 10.0.0.1"},
		{name: "new: machines that are not healthy wait", cps: 1,
			ms:   []mach{{addr: "10.0.0.1", rack: 0, state: StateUninitialized}, {addr: "10.0.0.2", rack: 0}, {addr: "10.0.0.3", rack: 0, state: StateUnhealthy}},
			want: "10.0.0.2 | "},
		{name: "new: not enough healthy machines", cps: 3, ms: six[:2], wantErr: ErrNoMachine},
		{name: "unchanged", ms: six, cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"}, want: "(unchanged)"},
		{name: "sticky: a better machine does not displace a control plane", cps: 3,
			ms:   with(six, func(ms []mach) { ms[1].life = 2000 * 24 * time.Hour }),
			cur:  []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			want: "(unchanged)"},
		{name: "a new healthy machine becomes a worker", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			curNodes: []string{"10.0.0.2", "10.0.1.2"}, ms: six,
			want: "10.0.0.1,10.0.1.1,10.0.2.1 | 10.0.0.2,10.0.1.2,10.0.2.2", changes: []string{"add worker 10.0.2.2 (rack 2)"}},
		{name: "a new unhealthy machine does not", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			curNodes: []string{"10.0.0.2", "10.0.1.2"}, ms: with(six, func(ms []mach) { ms[5].state = StateUnhealthy }),
			want: "(unchanged)"},
		{name: "unreachable control plane: tainted, kept while it may come back", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:      with(six, func(ms []mach) { ms[0].state, ms[0].since = StateUnreachable, 299*time.Second }),
			want:    "10.0.0.1!unreachable,10.0.1.1,10.0.2.1 | 10.0.0.2,10.0.1.2,10.0.2.2",
			changes: []string{"taint 10.0.0.1 cke.cybozu.com/state=unreachable:NoSchedule"}},
		{name: "unreachable control plane: replaced after the wait, by a healthy worker of the emptiest rack", cps: 3,
			cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:  with(six, func(ms []mach) { ms[2].state, ms[2].since = StateUnreachable, 300*time.Second }),
			// Every machine is a node: the replacement is promoted. Racks 0
			// and 2 have a control plane each, rack 1 none now.
			want:    "10.0.0.1,10.0.1.2,10.0.2.1 | 10.0.0.2,10.0.1.1!unreachable,10.0.2.2",
			changes: []string{"replace control plane 10.0.1.1 (UNREACHABLE for 5m0s) with 10.0.1.2 (rack 1)"}},
		{name: "unreachable control plane: an unused machine is preferred to a worker", cps: 3,
			cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"}, curNodes: []string{"10.0.0.2", "10.0.1.2", "10.0.2.2"},
			ms: with(append(six[:4:4], mach{addr: "10.0.3.1", rack: 3}, six[4], six[5]), func(ms []mach) {
				ms[2].state, ms[2].since = StateUnreachable, time.Hour
			}),
			want: "10.0.0.1,10.0.2.1,10.0.3.1 | 10.0.0.2,10.0.1.1!unreachable,10.0.1.2,10.0.2.2"},
		{name: "unhealthy control plane: replaced too", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:   with(six, func(ms []mach) { ms[4].state, ms[4].since = StateUnhealthy, time.Hour }),
			want: "10.0.0.1,10.0.1.1,10.0.2.2 | 10.0.0.2,10.0.1.2,10.0.2.1"},
		{name: "retiring control plane: replaced at once and drained", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:   with(six, func(ms []mach) { ms[0].state = StateRetiring }),
			want: "10.0.0.2,10.0.1.1,10.0.2.1 | 10.0.0.1!retiring,10.0.1.2,10.0.2.2"},
		{name: "two of three control planes failed: the quorum is lost, nothing is replaced", cps: 3,
			cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"}, curNodes: []string{},
			ms: with(six, func(ms []mach) {
				ms[0].state, ms[0].since = StateUnreachable, time.Hour
				ms[2].state, ms[2].since = StateUnreachable, 2*time.Hour
			}),
			want: "10.0.0.1!unreachable,10.0.1.1!unreachable,10.0.2.1 | 10.0.0.2,10.0.1.2,10.0.2.2"},
		{name: "five control planes, two failed: the longest failed is replaced", cps: 5,
			cur: []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2", "10.0.2.1"},
			ms: with(six, func(ms []mach) {
				ms[0].state, ms[0].since = StateUnreachable, time.Hour
				ms[2].state, ms[2].since = StateUnreachable, 2*time.Hour
			}),
			want: "10.0.0.1!unreachable,10.0.0.2,10.0.1.2,10.0.2.1,10.0.2.2 | 10.0.1.1!unreachable"},
		{name: "failed control plane and no machine to take its place: kept", cps: 3,
			cur:  []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:   with([]mach{six[0], six[2], six[4]}, func(ms []mach) { ms[0].state, ms[0].since = StateUnreachable, time.Hour }),
			want: "10.0.0.1!unreachable,10.0.1.1,10.0.2.1 | "},
		{name: "a control plane gone from sabakan is replaced", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:      append(six[:2:2], six[3:]...),
			want:    "10.0.0.1,10.0.1.2,10.0.2.1 | 10.0.0.2,10.0.2.2",
			changes: []string{"remove control plane 10.0.1.1: not in sabakan", "promote worker 10.0.1.2 to control plane (rack 1)"}},
		{name: "half the control planes gone: nothing changes", cps: 2, cur: []string{"10.0.0.1", "10.0.1.1"},
			ms: append(six[:2:2], six[3:]...), curNodes: []string{}, wantErr: ErrTooManyVanished},
		{name: "control planes lowered: the unhealthy one is demoted first", cps: 1,
			cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"}, ms: with(six, func(ms []mach) { ms[2].state = StateUnhealthy }),
			want:    "10.0.0.1 | 10.0.0.2,10.0.1.1,10.0.1.2,10.0.2.1,10.0.2.2",
			changes: []string{"demote control plane 10.0.1.1: more than control-plane-count 1", "demote control plane 10.0.2.1: more than control-plane-count 1"}},
		{name: "control planes raised: the emptiest racks", cps: 3, cur: []string{"10.0.0.1"}, ms: six,
			want: "10.0.0.1,10.0.1.1,10.0.2.1 | 10.0.0.2,10.0.1.2,10.0.2.2"},
		{name: "retiring worker: drained, kept", cps: 3, cur: []string{"10.0.0.1", "10.0.1.1", "10.0.2.1"},
			ms:   with(six, func(ms []mach) { ms[1].state = StateRetiring }),
			want: "10.0.0.1,10.0.1.1,10.0.2.1 | 10.0.0.2!retiring,10.0.1.2,10.0.2.2"},
		{name: "retired worker: kept until the wait is over", cps: 1, cur: []string{"10.0.0.1"},
			ms:   with(six, func(ms []mach) { ms[1].state, ms[1].since = StateRetired, 299*time.Second }),
			cons: func(c *cke.Constraints) { c.MinimumWorkersRate = 50 },
			want: "10.0.0.1 | 10.0.0.2!retired,10.0.1.1,10.0.1.2,10.0.2.1,10.0.2.2"},
		{name: "retired worker: removed after the wait", cps: 1, cur: []string{"10.0.0.1"},
			ms:      with(six, func(ms []mach) { ms[1].state, ms[1].since = StateRetired, 300*time.Second }),
			cons:    func(c *cke.Constraints) { c.MinimumWorkersRate = 50 },
			want:    "10.0.0.1 | 10.0.1.1,10.0.1.2,10.0.2.1,10.0.2.2",
			changes: []string{"remove worker 10.0.0.2: retired for 5m0s"}},
		{name: "retired workers: all removed while the cluster has its workers", cps: 1, cur: []string{"10.0.0.1"},
			ms: with(six, func(ms []mach) {
				for i := 1; i < 3; i++ {
					ms[i].state, ms[i].since = StateRetired, time.Hour
				}
			}),
			// 3 machines could be workers, and 3 stay.
			want: "10.0.0.1 | 10.0.1.2,10.0.2.1,10.0.2.2"},
		{name: "retired workers: kept while the cluster is short of workers", cps: 1, cur: []string{"10.0.0.1"},
			curNodes: []string{"10.0.0.2", "10.0.1.1", "10.0.1.2"},
			ms: with(six, func(ms []mach) {
				ms[1].state, ms[1].since = StateRetired, time.Hour
				ms[2].state, ms[2].since = StateRetired, time.Hour
				ms[4].state, ms[5].state = StateUnhealthy, StateUnhealthy
			}),
			// 3 machines could be workers (10.0.1.2 and the two unhealthy
			// ones): 60% is 1.8, so one retired worker may go (2 left),
			// not both.
			cons: func(c *cke.Constraints) { c.MinimumWorkersRate = 60 },
			want: "10.0.0.1 | 10.0.1.1!retired,10.0.1.2"},
		{name: "maximum-workers", cps: 1, ms: six, cons: func(c *cke.Constraints) { c.MaximumWorkers = 2 },
			want: "10.0.0.1 | 10.0.0.2,10.0.1.1"},
		{name: "a worker gone from sabakan is removed", cps: 1, cur: []string{"10.0.0.1"}, ms: six[:5],
			curNodes: []string{"10.0.0.2", "10.0.1.1", "10.0.1.2", "10.0.2.1", "10.0.2.2"},
			want:     "10.0.0.1 | 10.0.0.2,10.0.1.1,10.0.1.2,10.0.2.1", changes: []string{"remove worker 10.0.2.2: not in sabakan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := machines(tt.ms...)
			in := Input{Template: template(), Machines: ms, Constraints: constraints(tt.cps), Now: now}
			if tt.cons != nil {
				tt.cons(in.Constraints)
			}
			if tt.cur != nil {
				in.Current = current(t, ms, tt.cur...)
				if tt.curNodes != nil {
					in.Current.Nodes = slices.DeleteFunc(in.Current.Nodes, func(n *cke.Node) bool {
						return !n.ControlPlane && !slices.Contains(tt.curNodes, n.Address)
					})
				}
				// The current nodes as they were rendered when every
				// machine was healthy.
				healthy := slices.Clone(ms)
				for i := range healthy {
					healthy[i].Status = MachineStatus{State: StateHealthy}
				}
				fresh := current(t, healthy, tt.cur...)
				for i, n := range in.Current.Nodes {
					for _, f := range fresh.Nodes {
						if f.Address == n.Address {
							in.Current.Nodes[i] = f
						}
					}
				}
				// Machines gone from sabakan were nodes too.
				for _, a := range append(slices.Clone(tt.cur), tt.curNodes...) {
					if in.Current.Node(a) == nil {
						in.Current.Nodes = append(in.Current.Nodes, &cke.Node{Address: a, User: "cybozu", ControlPlane: slices.Contains(tt.cur, a)})
					}
				}
			}
			res, err := Generate(in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(res.Cluster); got != tt.want {
				t.Errorf("got  %s\nwant %s\nchanges %q", got, tt.want, res.Changes)
			}
			if tt.changes != nil && !slices.Equal(res.Changes, tt.changes) {
				t.Errorf("changes = %q, want %q", res.Changes, tt.changes)
			}
			if res.Cluster != nil {
				// A fixpoint: given its own answer, the generator is done.
				in.Current = res.Cluster
				again, err := Generate(in)
				if err != nil || again.Cluster != nil {
					t.Errorf("not a fixpoint: %s, %v, %q", summary(again.Cluster), err, again.Changes)
				}
			}
		})
	}
}

func TestGenerateIgnoresMachineOrder(t *testing.T) {
	var ms []mach
	for r := range 4 {
		for i := 1; i <= 5; i++ {
			ms = append(ms, mach{addr: fmt.Sprintf("10.0.%d.%d", r, i), rack: r, life: time.Duration(r*i*100) * 24 * time.Hour})
		}
	}
	ms[3].state = StateUnreachable
	want, err := Generate(Input{Template: template(), Machines: machines(ms...), Constraints: constraints(3), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		rand.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		got, err := Generate(Input{Template: template(), Machines: machines(ms...), Constraints: constraints(3), Now: now})
		if err != nil || !sameCluster(got.Cluster, want.Cluster) {
			t.Fatalf("another machine order gave %s, want %s (%v)", summary(got.Cluster), summary(want.Cluster), err)
		}
	}
}

func TestNodeRendering(t *testing.T) {
	tmpl := template()
	tmpl.Nodes[1].Taints = []cke.Taint{{Key: "example.com/dedicated", Value: "x", Effect: "NoSchedule"}}
	tmpl.Nodes[1].Annotations = map[string]string{"example.com/note": "hi"}
	ms := machines(mach{addr: "10.0.0.1", rack: 0}, mach{addr: "10.0.1.1", rack: 1, state: StateUnreachable, role: "ss"})
	ms[1].Spec.Labels = append(ms[1].Spec.Labels, Label{Name: "bad label!", Value: "x"})
	res, err := Generate(Input{Template: tmpl, Machines: ms, Constraints: constraints(1), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// 10.0.1.1 is unreachable: not a node of a new cluster.
	if got := summary(res.Cluster); got != "10.0.0.1 | " {
		t.Fatalf("nodes: %s", got)
	}
	cp := res.Cluster.Nodes[0]
	wantLabels := map[string]string{
		"tmpl": "cp", "sabakan.cke.cybozu.com/product": "r640", "cke.cybozu.com/rack": "0", "cke.cybozu.com/index-in-rack": "4",
		"cke.cybozu.com/role": "cs", "cke.cybozu.com/retire-month": "2028-01", "cke.cybozu.com/retire-year": "2028",
		"cke.cybozu.com/register-month": "2025-12", "topology.kubernetes.io/zone": "rack0",
		"node-role.kubernetes.io/cs": "true",
	}
	if fmt.Sprint(cp.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels\n got %v\nwant %v", cp.Labels, wantLabels)
	}
	wantAnn := map[string]string{"cke.cybozu.com/serial": "s-10.0.0.1", "cke.cybozu.com/register-date": "2025-12-01T00:00:00Z",
		"cke.cybozu.com/retire-date": "2028-01-05T00:00:00Z"}
	if fmt.Sprint(cp.Annotations) != fmt.Sprint(wantAnn) {
		t.Errorf("annotations\n got %v\nwant %v", cp.Annotations, wantAnn)
	}
	if cp.User != "cybozu" || len(cp.Taints) != 0 {
		t.Errorf("user %q taints %v", cp.User, cp.Taints)
	}

	// As a worker, unreachable: the template's taint and the state's.
	in := Input{Template: tmpl, Machines: ms, Constraints: constraints(1), Now: now, Current: res.Cluster}
	in.Current.Nodes = append(in.Current.Nodes, &cke.Node{Address: "10.0.1.1", User: "cybozu"})
	res, err = Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	w := res.Cluster.Nodes[1]
	wantTaints := []cke.Taint{{Key: "example.com/dedicated", Value: "x", Effect: "NoSchedule"}, {Key: TaintState, Value: "unreachable", Effect: "NoSchedule"}}
	if !slices.Equal(w.Taints, wantTaints) || w.Annotations["example.com/note"] != "hi" || w.Labels["tmpl"] != "worker" || w.Labels["node-role.kubernetes.io/ss"] != "true" {
		t.Errorf("worker: %+v", w)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `"sabakan.cke.cybozu.com/bad label!"`) {
		t.Errorf("warnings = %q", res.Warnings)
	}
}

func TestGenerateRoles(t *testing.T) {
	tmpl := template("cs", "ss")
	tmpl.Nodes[0].Labels[LabelRole] = "cs"
	ms := machines(mach{addr: "10.0.0.1", rack: 0, role: "ss"}, mach{addr: "10.0.0.2", rack: 0, role: "cs"},
		mach{addr: "10.0.1.1", rack: 1, role: "gpu"}, mach{addr: "10.0.1.2", rack: 1, role: "ss"})
	res, err := Generate(Input{Template: tmpl, Machines: ms, Constraints: constraints(1), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// The control plane is a cs machine although an ss one sorts first; the
	// gpu machine has no template.
	if got := summary(res.Cluster); got != "10.0.0.2 | 10.0.0.1,10.0.1.2" {
		t.Errorf("nodes: %s", got)
	}
	for _, n := range res.Cluster.Nodes[1:] {
		if n.Labels[LabelRole] != "ss" {
			t.Errorf("%s rendered from the wrong template: %v", n.Address, n.Labels)
		}
	}

	// A template without the gpu role's... and a worker whose role lost its
	// template leaves.
	in := Input{Template: template("cs"), Machines: ms, Constraints: constraints(1), Now: now, Current: res.Cluster}
	in.Template.Nodes[0].Labels[LabelRole] = "cs"
	res, err = Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Cluster); got != "10.0.0.2 | " {
		t.Errorf("after the ss template went: %s (%q)", got, res.Changes)
	}
}

func TestGenerateWarnsAboutMachines(t *testing.T) {
	ms := machines(mach{addr: "10.0.0.1"}, mach{addr: "10.0.0.1"}, mach{addr: "10.0.0.2"})
	ms[2].Spec.IPv4 = nil
	res, err := Generate(Input{Template: template(), Machines: ms, Constraints: constraints(1), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "also machine") || !strings.Contains(res.Warnings[1], "no IPv4") {
		t.Errorf("warnings = %q", res.Warnings)
	}
}

func TestTemplateChangeReachesEveryNode(t *testing.T) {
	ms := machines(mach{addr: "10.0.0.1", rack: 0}, mach{addr: "10.0.1.1", rack: 1})
	in := Input{Template: template(), Machines: ms, Constraints: constraints(1), Now: now}
	first, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Current = first.Cluster
	in.Template = template()
	in.Template.Nodes[1].Labels["example.com/pool"] = "blue"
	in.Template.Options.Kubelet.ExtraArgs = []string{"--v=2"}
	res, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"labels, annotations or taints of 10.0.1.1 from its machine and template"}; !slices.Equal(res.Changes, want) {
		t.Errorf("changes = %q, want %q", res.Changes, want)
	}
	if w := res.Cluster.Node("10.0.1.1"); w.Labels["example.com/pool"] != "blue" || res.Cluster.Node("10.0.0.1").Labels["example.com/pool"] != "" {
		t.Errorf("the worker template's label: %v", res.Cluster.Nodes)
	}
	if !slices.Equal(res.Cluster.Options.Kubelet.ExtraArgs, []string{"--v=2"}) {
		t.Errorf("options = %+v", res.Cluster.Options)
	}

	// Only the settings change.
	in.Current = res.Cluster
	in.Template.Options.Kubelet.ExtraArgs = []string{"--v=3"}
	res, err = Generate(in)
	if err != nil || !slices.Equal(res.Changes, []string{"cluster settings from the template"}) {
		t.Errorf("changes = %q, %v", res.Changes, err)
	}
}
