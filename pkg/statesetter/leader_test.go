package statesetter

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/sabakan"
)

// countingInventory records which setter instance read the inventory.
type countingInventory struct {
	name  string
	mu    *sync.Mutex
	reads map[string]int
}

func (c countingInventory) Machines(context.Context) ([]sabakan.Machine, error) {
	c.mu.Lock()
	c.reads[c.name]++
	c.mu.Unlock()
	return nil, nil
}

func (countingInventory) SetState(context.Context, string, sabakan.MachineState) error { return nil }

type noMembers struct{}

func (noMembers) Members(context.Context) ([]membership.Member, error) { return nil, nil }

func TestOnlyTheLeaderActs(t *testing.T) {
	var mu sync.Mutex
	reads := map[string]int{}
	type instance struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) instance {
		ctx, cancel := context.WithCancel(context.Background())
		s := &Setter{Inventory: countingInventory{name, &mu, reads}, Members: noMembers{}, Interval: 20 * time.Millisecond}
		etcd := etcdtest.NewClient(t, t.Name()+"/")
		done := make(chan struct{})
		go func() { RunAsLeader(ctx, etcd, name, s); close(done) }()
		return instance{cancel, done}
	}
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := map[string]int{}
		for k, v := range reads {
			c[k] = v
		}
		return c
	}

	a := start("a")
	time.Sleep(300 * time.Millisecond)
	b := start("b")
	time.Sleep(500 * time.Millisecond)
	if got := snapshot(); got["a"] == 0 || got["b"] != 0 {
		t.Fatalf("reads = %v: want only the first instance (the leader) acting", got)
	}
	a.cancel()
	<-a.done
	deadline := time.Now().Add(10 * time.Second)
	for snapshot()["b"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second instance did not take over after the leader stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.cancel()
	<-b.done
}

// oneMachine is an inventory of one healthy machine that records changes.
type oneMachine struct {
	mu      sync.Mutex
	changes []string
}

func (o *oneMachine) Machines(context.Context) ([]sabakan.Machine, error) {
	return []sabakan.Machine{{
		Spec:   sabakan.MachineSpec{Serial: "m1", IPv4: []string{"10.0.0.1"}},
		Status: sabakan.MachineStatus{State: sabakan.StateHealthy},
	}}, nil
}

func (o *oneMachine) SetState(_ context.Context, serial string, st sabakan.MachineState) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.changes = append(o.changes, serial+"="+string(st))
	return nil
}

// failingMember reports m1 with a failed unit, then calls after.
type failingMember struct{ after func() }

func (f failingMember) Members(context.Context) ([]membership.Member, error) {
	defer f.after()
	return []membership.Member{{Name: "m1", Addr: "10.0.0.1", Status: "alive",
		Tags: map[string]string{membership.TagFailedUnits: "kubelet.service"}}}, nil
}

// TestGracePeriodRestartsWithEachTerm runs two terms of leadership, one
// round each, with a gap longer than the grace period between them. The
// machine looked unhealthy at the end of the first term; what happened in
// the gap is unknown (another leader ran), so the second term must start the
// grace period anew instead of marking the machine unhealthy at once.
func TestGracePeriodRestartsWithEachTerm(t *testing.T) {
	inv := &oneMachine{}
	s := &Setter{Inventory: inv, Interval: time.Hour, GracePeriod: 200 * time.Millisecond}
	term := func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.Members = failingMember{after: cancel}
		s.Run(ctx)
	}
	term()
	time.Sleep(300 * time.Millisecond)
	term()
	if len(inv.changes) != 0 {
		t.Errorf("changes %v on the first round of a new term, want none before the grace period", inv.changes)
	}
}
