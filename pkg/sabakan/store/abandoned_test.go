package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// abandon writes what a server killed in the middle of a registration
// leaves once the lease of its record has expired: n machines (and their
// rack indices) naming a registration whose record is gone.
func abandon(t *testing.T, s *Store, prefix string, n int) []sabakan.MachineSpec {
	t.Helper()
	ctx := context.Background()
	ipam := testIPAM()
	sp := specs(prefix, n, 1)
	for i := range sp {
		sp[i].Role = "cs"
		sp[i].Rack = uint(7 + i/20)
		m := sabakan.NewMachine(sp[i], time.Now())
		m.Spec.IndexInRack = ipam.NodeIndexOffset + 1 + uint(i%20)
		ipam.Assign(m)
		data, _ := json.Marshal(record{Machine: *m, Registration: "killed" + prefix})
		if _, err := s.client.Txn(ctx).Then(
			clientv3.OpPut(machineKey(m.Spec.Serial), string(data)),
			clientv3.OpPut(slotKey(m.Spec.Rack, m.Spec.IndexInRack), m.Spec.Serial),
		).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return sp
}

// TestAbandonedRegistrationAnyServer: the machines of a registration whose
// server was killed are rolled back by any server within seconds of the
// record's lease expiring, not only by the elected janitor — whose election
// a killed janitor blocks for its whole session TTL (60 s by default, against
// 10 s for a registration's lease) — and a registration they block rolls
// them back itself.
func TestAbandonedRegistrationAnyServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStore(t)
	// A janitor that died: its session lives on, nobody else is elected.
	dead, err := etcdutil.Campaign(ctx, s.client, KeyJanitor, "killed", 600)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Resign(context.Background())

	// A server that is not the janitor removes them.
	abandon(t, s, "gone-", 70)
	jctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.RunJanitor(jctx, "alive", 600) }()
	// Within a sweep (2 s) on a quiet machine; the bound has slack for a
	// loaded one, and stays far below the dead janitor's 600 s session that
	// it must not wait for.
	bound := sweepInterval + 10*time.Second
	deadline := time.Now().Add(bound)
	for {
		// Counted alone: two reads could see a removal between them.
		left, err := s.client.Get(ctx, KeyMachines, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if left.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned registration's machines are still there %s later, the janitor being dead", bound)
		}
		time.Sleep(100 * time.Millisecond)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("RunJanitor: %v", err)
	}
	if n := checkInvariants(t, s.client); n != 0 {
		t.Fatalf("%d machines left", n)
	}

	// With no janitor at all, a registration of the same serials rolls
	// them back itself.
	other := openStore(t, t.Name()+"/")
	sp := abandon(t, other, "again-", 5)
	if err := other.sync(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := other.Register(ctx, sp)
	if err != nil {
		t.Fatalf("registering the serials of an abandoned registration: %v", err)
	}
	if n := checkInvariants(t, s.client); n != len(sp) {
		t.Errorf("%d machines in etcd, want %d", n, len(sp))
	}
	for _, m := range ms {
		if got, err := other.Machine(ctx, m.Spec.Serial); err != nil || got.Spec.IndexInRack != m.Spec.IndexInRack {
			t.Errorf("machine %s: %+v, %v", m.Spec.Serial, got, err)
		}
	}
}
