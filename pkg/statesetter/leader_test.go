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
