package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// testIPAM is the reference's worked example with a pool for 300 racks.
func testIPAM() *sabakan.IPAMConfig {
	return &sabakan.IPAMConfig{
		MaxNodesInRack:    28,
		NodeIPv4Pool:      "10.64.0.0/12",
		NodeRangeSize:     6,
		NodeRangeMask:     26,
		NodeIPPerNode:     3,
		NodeIndexOffset:   3,
		NodeGatewayOffset: 1,
		BMCIPv4Pool:       "10.96.0.0/12",
		BMCIPv4Offset:     "0.0.1.0",
		BMCRangeSize:      5,
		BMCRangeMask:      20,
		BMCGatewayOffset:  1,
	}
}

// testRegistrationTTL is the registration lease of the tests' stores. No
// test here waits for it to expire (those that need an expired lease revoke
// it), so it is long: a registration's lease is kept alive every third of
// its TTL, and under -race on a loaded machine (CI: load average 50-100 on 2
// cores) a keep-alive of a 2 s lease came too late often enough that
// registrations failed with "took longer than its lease".
const testRegistrationTTL = time.Minute

// openStore opens a store on a client of its own under prefix, as one
// sabakan server would.
func openStore(t testing.TB, prefix string) *Store {
	t.Helper()
	s, err := Open(context.Background(), etcdtest.NewClient(t, prefix), Options{Hostname: "test", RegistrationTTL: testRegistrationTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, t.Name()+"/")
	if err := s.PutIPAM(context.Background(), testIPAM()); err != nil {
		t.Fatal(err)
	}
	return s
}

// specs returns n machines spread over racks, one boot server per rack.
func specs(prefix string, n, racks int) []sabakan.MachineSpec {
	out := make([]sabakan.MachineSpec, n)
	for i := range out {
		role := "cs"
		if i < racks {
			role = sabakan.RoleBoot
		} else if i%5 == 0 {
			role = "ss"
		}
		out[i] = sabakan.MachineSpec{
			Serial: fmt.Sprintf("%s%05d", prefix, i), Rack: uint(i % racks), Role: role,
			Labels: map[string]string{"product": "R640"}, BMC: sabakan.MachineBMC{Type: "IPMI-2.0"},
		}
	}
	return out
}

// checkInvariants asserts what must hold whatever happened: every index in
// rack and every address is used once, every machine has its slot key and
// every slot key its machine.
func checkInvariants(t *testing.T, c *clientv3.Client) (machines int) {
	t.Helper()
	ctx := context.Background()
	resp, err := c.Get(ctx, KeyMachines, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	slots, err := c.Get(ctx, KeyNodeIndices, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	slotOwner := map[string]string{}
	for _, kv := range slots.Kvs {
		slotOwner[string(kv.Key)] = string(kv.Value)
	}
	addrs := map[string]string{}
	for _, kv := range resp.Kvs {
		var r record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			t.Fatal(err)
		}
		s := r.Spec
		sk := slotKey(s.Rack, s.IndexInRack)
		if slotOwner[sk] != s.Serial {
			t.Errorf("slot %s belongs to %q, not to its machine %s", sk, slotOwner[sk], s.Serial)
		}
		delete(slotOwner, sk)
		for _, a := range append(s.IPv4, s.BMC.IPv4) {
			if other, dup := addrs[a]; dup {
				t.Errorf("address %s is used by %s and %s", a, other, s.Serial)
			}
			addrs[a] = s.Serial
		}
	}
	for k, v := range slotOwner {
		t.Errorf("slot %s (%s) has no machine", k, v)
	}
	return len(resp.Kvs)
}

func TestRegisterAndQuery(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	ms, err := s.Register(ctx, specs("a", 30, 3))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 30 {
		t.Fatalf("registered %d machines", len(ms))
	}
	boot, err := s.Machine(ctx, "a00001")
	if err != nil {
		t.Fatal(err)
	}
	if boot.Spec.Role != "boot" || boot.Spec.IndexInRack != 3 || boot.Spec.Rack != 1 {
		t.Errorf("boot server placed at rack %d index %d", boot.Spec.Rack, boot.Spec.IndexInRack)
	}
	// Worked example of the reference: rack 1, index 5 is 10.69.0.197 in a
	// 10.69.0.0/16 pool; ours starts at 10.64.0.0.
	cs, _ := s.Query(ctx, &sabakan.Query{Has: sabakan.Filter{Racks: []uint{1}, Roles: []string{"cs"}}})
	if len(cs) == 0 || cs[0].Spec.IndexInRack != 4 {
		t.Fatalf("first cs of rack 1: %+v", cs)
	}
	if got := cs[0].Spec.IPv4[0]; got != "10.64.0.196" {
		t.Errorf("rack 1 index 4 address = %s, want 10.64.0.196", got)
	}
	if cs[0].Status.State != sabakan.StateUninitialized || cs[0].Spec.RegisterDate.IsZero() {
		t.Errorf("new machine status %+v", cs[0].Status)
	}
	all, _ := s.Query(ctx, nil)
	if len(all) != 30 {
		t.Errorf("query all = %d machines", len(all))
	}
	byIP, _ := s.Query(ctx, &sabakan.Query{Has: sabakan.Filter{IPv4: []string{cs[0].Spec.IPv4[1]}}})
	if len(byIP) != 1 || byIP[0].Spec.Serial != cs[0].Spec.Serial {
		t.Errorf("query by second address = %v", byIP)
	}
	checkInvariants(t, s.client)

	// Duplicates, a second boot server and a full rack are conflicts.
	for name, sp := range map[string][]sabakan.MachineSpec{
		"duplicate serial": {{Serial: "a00005", Role: "cs", BMC: sabakan.MachineBMC{Type: "x"}}},
		"second boot":      {{Serial: "new-boot", Role: "boot", Rack: 2, BMC: sabakan.MachineBMC{Type: "x"}}},
	} {
		if _, err := s.Register(ctx, sp); !errors.Is(err, sabakan.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", name, err)
		}
	}
	if _, err := s.Register(ctx, specs("full", 29, 1)[1:]); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("overfilling rack 0: err = %v, want ErrConflict", err)
	}
	if n := checkInvariants(t, s.client); n != 30 {
		t.Errorf("%d machines after refused registrations, want 30", n)
	}
	if _, err := s.Register(ctx, []sabakan.MachineSpec{{Serial: "far", Role: "cs", Rack: 100000, BMC: sabakan.MachineBMC{Type: "x"}}}); !errors.Is(err, sabakan.ErrBadRequest) {
		t.Errorf("rack outside the pool: err = %v, want ErrBadRequest", err)
	}
}

func TestRegisterWithoutIPAM(t *testing.T) {
	s := openStore(t, t.Name()+"/")
	_, err := s.Register(context.Background(), specs("a", 1, 1))
	if !errors.Is(err, sabakan.ErrConflict) || !strings.Contains(err.Error(), "IPAM") {
		t.Errorf("err = %v, want a conflict naming IPAM", err)
	}
}

// TestRegisterLarge registers 1,000 machines in one call against etcd's
// default limits (128 operations per transaction, 1.5 MiB per request).
func TestRegisterLarge(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Register(ctx, specs("big", 1200, 60)); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, t.Name()+"/")
	all, err := other.Query(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1200 {
		t.Errorf("another server sees %d machines, want 1200", len(all))
	}
	checkInvariants(t, s.client)
}

// TestRegisterAllOrNothing makes the last chunk of a large registration
// conflict and checks that nothing of it remains.
func TestRegisterAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sp := specs("x", 500, 20)
	// Another server registered the last serial meanwhile, bypassing this
	// server's pre-check: only the create-only comparison catches it.
	if _, err := s.client.Put(ctx, machineKey(sp[499].Serial), `{"spec":{"serial":"x00499","rack":19,"index-in-rack":99}}`); err != nil {
		t.Fatal(err)
	}
	_, err := s.tryRegisterAfterSync(ctx, sp)
	if err == nil {
		t.Fatal("registration succeeded over an existing machine")
	}
	resp, _ := s.client.Get(ctx, KeyMachines, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 1 {
		t.Errorf("%d machine keys left after the failed registration, want 1", resp.Count)
	}
	resp, _ = s.client.Get(ctx, KeyNodeIndices, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Errorf("%d slot keys left after the failed registration, want 0", resp.Count)
	}
	resp, _ = s.client.Get(ctx, KeyRegistrations, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Errorf("%d registration records left, want 0", resp.Count)
	}
}

// tryRegisterAfterSync runs one attempt whose pre-check misses the machine
// written behind the index's back.
func (s *Store) tryRegisterAfterSync(ctx context.Context, sp []sabakan.MachineSpec) ([]*sabakan.Machine, error) {
	s.idx.mu.Lock()
	s.idx.rev += 1 << 40 // pretend the index is current
	s.idx.mu.Unlock()
	defer func() {
		s.idx.mu.Lock()
		s.idx.rev -= 1 << 40
		s.idx.mu.Unlock()
	}()
	return s.tryRegister(ctx, sp)
}

// TestConcurrentRegistrations runs registrations from three servers into the
// same racks at once.
func TestConcurrentRegistrations(t *testing.T) {
	ctx := context.Background()
	stores := []*Store{newStore(t), openStore(t, t.Name()+"/"), openStore(t, t.Name()+"/")}
	var wg sync.WaitGroup
	const perServer, batches = 60, 4
	for i, s := range stores {
		for b := range batches {
			wg.Go(func() {
				sp := specs(fmt.Sprintf("s%d-b%d-", i, b), perServer, 30)
				for j := range sp {
					sp[j].Role = "cs" // boot slots would conflict by design
				}
				if _, err := s.Register(ctx, sp); err != nil {
					t.Errorf("server %d batch %d: %v", i, b, err)
				}
			})
		}
	}
	wg.Wait()
	if n := checkInvariants(t, stores[0].client); n != 3*perServer*batches {
		t.Errorf("%d machines registered, want %d", n, 3*perServer*batches)
	}
	for i, s := range stores {
		all, err := s.Query(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3*perServer*batches {
			t.Errorf("server %d sees %d machines", i, len(all))
		}
	}
}

// TestKilledRegistration leaves a registration half-written, as a server
// killed mid-request would, and checks that readers never see it and that the
// janitor removes it once its lease expires. The lease is long and revoked
// by the test where it would expire, so that a loaded machine cannot make it
// expire early, before the sweep that must remove nothing.
func TestKilledRegistration(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Register(ctx, specs("keep", 3, 3)); err != nil {
		t.Fatal(err)
	}
	lease, err := s.client.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	id := "deadbeef"
	rec, _ := json.Marshal(registration{State: regPending, Server: "killed"})
	s.client.Put(ctx, registrationKey(id), string(rec), clientv3.WithLease(lease.ID))
	ipam := testIPAM()
	for i := range 100 {
		m := sabakan.NewMachine(sabakan.MachineSpec{Serial: fmt.Sprintf("half%03d", i), Rack: uint(i % 4), IndexInRack: uint(10 + i/4), Role: "cs"}, time.Now())
		ipam.Assign(m)
		data, _ := json.Marshal(record{Machine: *m, Registration: id})
		s.client.Put(ctx, machineKey(m.Spec.Serial), string(data))
		s.client.Put(ctx, slotKey(m.Spec.Rack, m.Spec.IndexInRack), m.Spec.Serial)
	}
	other := openStore(t, t.Name()+"/")
	for _, st := range []*Store{s, other} {
		all, err := st.Query(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 {
			t.Errorf("a reader sees %d machines during a pending registration, want 3", len(all))
		}
		if _, err := st.Machine(ctx, "half000"); !errors.Is(err, sabakan.ErrNotFound) {
			t.Errorf("pending machine found: %v", err)
		}
		if _, err := st.SetState(ctx, "half000", sabakan.StateHealthy); !errors.Is(err, sabakan.ErrNotFound) {
			t.Errorf("state of a pending machine changed: %v", err)
		}
	}
	// Its slots are taken meanwhile: a new machine of rack 0 avoids them.
	ms, err := s.Register(ctx, []sabakan.MachineSpec{{Serial: "new", Role: "cs", BMC: sabakan.MachineBMC{Type: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Spec.IndexInRack != 4 {
		t.Errorf("new machine got index %d, want 4", ms[0].Spec.IndexInRack)
	}
	// Sweeping before the lease expires removes nothing.
	if err := other.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := checkInvariants(t, s.client); n != 104 {
		t.Fatalf("%d machines after an early sweep, want 104", n)
	}
	// The lease expires (what etcd does to an expired lease: its keys go),
	// and the next sweep removes the registration, whatever the load.
	if _, err := s.client.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := other.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := checkInvariants(t, s.client); n != 4 {
		t.Fatalf("%d machines after the sweep that followed the lease's expiry, want 4", n)
	}
}

// TestSweepTidiesCommitted checks that committed registrations end up as
// plain machines and no records.
func TestSweepTidiesCommitted(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Register(ctx, specs("t", 150, 10)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	resp, _ := s.client.Get(ctx, KeyRegistrations, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Errorf("%d registration records left", resp.Count)
	}
	machines, _ := s.client.Get(ctx, KeyMachines, clientv3.WithPrefix())
	for _, kv := range machines.Kvs {
		if strings.Contains(string(kv.Value), `"registration"`) {
			t.Fatalf("machine %s still names its registration", kv.Key)
		}
	}
	if all, _ := s.Query(ctx, nil); len(all) != 150 {
		t.Errorf("%d machines visible after tidying", len(all))
	}
}

func TestLifeCycle(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Register(ctx, specs("m", 2, 1)); err != nil {
		t.Fatal(err)
	}
	const serial = "m00001"
	step := func(to sabakan.MachineState, want error) {
		t.Helper()
		_, err := s.SetState(ctx, serial, to)
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("→ %s: err = %v, want %v", to, err, want)
		}
	}
	step(sabakan.StateRetired, sabakan.ErrConflict)
	step("sleeping", sabakan.ErrBadRequest)
	step(sabakan.StateHealthy, nil)
	step(sabakan.StateHealthy, nil) // no-op
	if err := s.PutCrypt(ctx, serial, "pci-0000:00:1f.2-ata-1", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCrypt(ctx, serial, "pci-0000:00:1f.2-ata-1", []byte("other")); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("overwriting a key: %v", err)
	}
	if _, err := s.DeleteCrypts(ctx, serial); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("deleting keys of a healthy machine: %v", err)
	}
	step(sabakan.StateRetiring, nil)
	if err := s.PutCrypt(ctx, serial, "pci-2", []byte("k")); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("adding a key while retiring: %v", err)
	}
	step(sabakan.StateRetired, sabakan.ErrBadRequest) // keys exist
	if err := s.DeleteMachine(ctx, serial); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("deleting a retiring machine: %v", err)
	}
	paths, err := s.DeleteCrypts(ctx, serial)
	if err != nil || len(paths) != 1 || paths[0] != "pci-0000:00:1f.2-ata-1" {
		t.Fatalf("DeleteCrypts = %v, %v", paths, err)
	}
	if _, err := s.Crypt(ctx, serial, paths[0]); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("key still readable: %v", err)
	}
	step(sabakan.StateRetired, nil)
	if err := s.DeleteMachine(ctx, serial); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Machine(ctx, serial); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("deleted machine found: %v", err)
	}
	// Its index is free again.
	ms, err := s.Register(ctx, []sabakan.MachineSpec{{Serial: "again", Role: "cs", BMC: sabakan.MachineBMC{Type: "x"}}})
	if err != nil || ms[0].Spec.IndexInRack != 4 {
		t.Errorf("re-registration: %v, index %d", err, ms[0].Spec.IndexInRack)
	}
	checkInvariants(t, s.client)

	var actions []string
	err = s.Logs(ctx, time.Time{}, time.Time{}, func(e *sabakan.AuditEntry) error {
		actions = append(actions, fmt.Sprintf("%s/%s/%s", e.Category, e.Action, e.Instance))
		if e.Revision == 0 || e.Timestamp.IsZero() {
			t.Errorf("entry without revision or time: %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "ipam/put/config machines/register/ machines/set-state/m00001 crypts/put/m00001 machines/set-state/m00001 crypts/delete/m00001 machines/set-state/m00001 machines/delete/m00001 machines/register/"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit log:\n got %s\nwant %s", got, want)
	}
}

// TestAuditVocabulary: the inventory's audit entries use the reference's
// categories, instances and actions for the reference's events (and its
// details, except where ours say more: a registration's placements, the
// disk paths whose keys were deleted), plus set-state, which the
// reference does not log. docs/sabakan-api.md lists them.
func TestAuditVocabulary(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	ms, err := s.Register(ctx, specs("v", 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	const serial = "v00001"
	steps := []func() error{
		func() error { return s.SetLabel(ctx, serial, "os", "1855.4.0") },
		func() error { return s.RemoveLabel(ctx, serial, "os") },
		func() error { return s.SetRetireDate(ctx, serial, time.Date(2031, 3, 31, 0, 0, 0, 0, time.UTC)) },
		func() error { _, err := s.SetState(ctx, serial, sabakan.StateHealthy); return err },
		func() error { return s.PutCrypt(ctx, serial, "pci-1", []byte("k")) },
		func() error { _, err := s.SetState(ctx, serial, sabakan.StateRetiring); return err },
		func() error { _, err := s.DeleteCrypts(ctx, serial); return err },
		func() error { _, err := s.SetState(ctx, serial, sabakan.StateRetired); return err },
		func() error { return s.DeleteMachine(ctx, serial) },
		func() error { return s.PutDHCP(ctx, &sabakan.DHCPConfig{LeaseMinutes: 30}) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	var got []string
	s.Logs(ctx, time.Time{}, time.Time{}, func(e *sabakan.AuditEntry) error {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s", e.Category, e.Instance, e.Action, e.Detail))
		return nil
	})
	want := []string{
		"ipam|config|put|" + mustJSON(t, testIPAM()),
		"machines||register|" + registeredDetail(ms),
		"machines|v00001|put-label|os/1855.4.0",
		"machines|v00001|delete-label|os",
		"machines|v00001|set-retire-date|2031-03-31 00:00:00 +0000 UTC",
		"machines|v00001|set-state|uninitialized -> healthy",
		"crypts|v00001|put|pci-1",
		"machines|v00001|set-state|healthy -> retiring",
		"crypts|v00001|delete|pci-1",
		"machines|v00001|set-state|retiring -> retired",
		"machines|v00001|delete|",
		"dhcp|config|put|" + mustJSON(t, &sabakan.DHCPConfig{LeaseMinutes: 30}),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestLabelsAndRetireDate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Register(ctx, specs("l", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabel(ctx, "l00000", "os", "1855.4.0"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabel(ctx, "l00000", "bad name", "x"); !errors.Is(err, sabakan.ErrBadRequest) {
		t.Errorf("bad label name: %v", err)
	}
	if err := s.RemoveLabel(ctx, "l00000", "nothere"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("removing a missing label: %v", err)
	}
	if err := s.RemoveLabel(ctx, "l00000", "product"); err != nil {
		t.Fatal(err)
	}
	date := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	if err := s.SetRetireDate(ctx, "l00000", date); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Machine(ctx, "l00000")
	if len(m.Spec.Labels) != 1 || m.Spec.Labels["os"] != "1855.4.0" || !m.Spec.RetireDate.Equal(date) {
		t.Errorf("machine = %+v", m.Spec)
	}
	if err := s.SetLabel(ctx, "nobody", "a", "b"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("label on an unknown machine: %v", err)
	}
}

// TestRetireDateDefault: a machine registered without a retire date gets
// its registration date, as in the reference; so does a record written
// before that default existed, when read and when rewritten.
func TestRetireDateDefault(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 123, time.UTC)
	s := openStore(t, t.Name()+"/")
	s.opts.Now = func() time.Time { return now }
	if err := s.PutIPAM(ctx, testIPAM()); err != nil {
		t.Fatal(err)
	}
	sp := specs("r", 2, 1)
	planned := time.Date(2031, 3, 31, 0, 0, 0, 0, time.UTC)
	sp[1].RetireDate = planned
	if _, err := s.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	for serial, want := range map[string]time.Time{"r00000": now, "r00001": planned} {
		m, err := s.Machine(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Spec.RetireDate.Equal(want) || !m.Spec.RegisterDate.Equal(now) {
			t.Errorf("%s: register %s, retire %s; want retire %s", serial, m.Spec.RegisterDate, m.Spec.RetireDate, want)
		}
	}

	// A record of an earlier version, with the zero retire date.
	old := sabakan.Machine{Spec: sabakan.MachineSpec{Serial: "old", Rack: 3, IndexInRack: 4, Role: "cs",
		RegisterDate: now.Add(-time.Hour), BMC: sabakan.MachineBMC{Type: "x"}},
		Status: sabakan.MachineStatus{Timestamp: now, State: sabakan.StateHealthy}}
	data, _ := json.Marshal(record{Machine: old})
	if !strings.Contains(string(data), `"retire-date":"0001-01-01T00:00:00Z"`) {
		t.Fatalf("test record: %s", data)
	}
	s.client.Put(ctx, machineKey("old"), string(data))
	s.client.Put(ctx, slotKey(3, 4), "old")
	m, err := s.Machine(ctx, "old")
	if err != nil || !m.Spec.RetireDate.Equal(old.Spec.RegisterDate) {
		t.Fatalf("old record read as %+v, %v", m, err)
	}
	_, js, err := s.QueryJSON(ctx, &sabakan.Query{Has: sabakan.Filter{Serials: []string{"old"}}})
	if err != nil || strings.Contains(string(js), "0001-01-01") {
		t.Errorf("QueryJSON of the old record: %s, %v", js, err)
	}
	if err := s.SetLabel(ctx, "old", "os", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Get(ctx, machineKey("old"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	if want := `"retire-date":"` + old.Spec.RegisterDate.Format(time.RFC3339Nano) + `"`; !strings.Contains(string(resp.Kvs[0].Value), want) {
		t.Errorf("rewritten record lacks %s: %s", want, resp.Kvs[0].Value)
	}
}

func TestIPAMLockedByMachines(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	c := testIPAM()
	c.MaxNodesInRack = 20
	if err := s.PutIPAM(ctx, c); err != nil {
		t.Fatalf("changing IPAM without machines: %v", err)
	}
	if got, _ := s.IPAM(ctx); got.MaxNodesInRack != 20 {
		t.Errorf("IPAM not updated: %+v", got)
	}
	if _, err := s.Register(ctx, specs("i", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIPAM(ctx, testIPAM()); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("changing IPAM with machines: %v", err)
	}
	bad := testIPAM()
	bad.NodeRangeMask = 40
	if err := s.PutIPAM(ctx, bad); !errors.Is(err, sabakan.ErrBadRequest) {
		t.Errorf("invalid IPAM: %v", err)
	}
	if _, err := s.DHCP(ctx); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("unset DHCP: %v", err)
	}
	if err := s.PutDHCP(ctx, &sabakan.DHCPConfig{LeaseMinutes: 30, DNSServers: []string{"10.0.0.53"}}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DHCP(ctx); err != nil || d.LeaseMinutes != 30 {
		t.Errorf("DHCP = %+v, %v", d, err)
	}
}

// TestReadYourWritesAcrossServers checks that a query on one server reflects
// a write acknowledged by another, also when the prefix is otherwise idle and
// the revision advanced elsewhere.
func TestReadYourWritesAcrossServers(t *testing.T) {
	ctx := context.Background()
	a := newStore(t)
	b := openStore(t, t.Name()+"/")
	if _, err := a.Register(ctx, specs("r", 5, 1)); err != nil {
		t.Fatal(err)
	}
	outside := etcdtest.NewClient(t, t.Name()+"-elsewhere/")
	for i := range 50 {
		if _, err := a.SetState(ctx, "r00001", []sabakan.MachineState{sabakan.StateHealthy, sabakan.StateUnhealthy}[i%2]); err != nil {
			t.Fatal(err)
		}
		outside.Put(ctx, "noise", fmt.Sprint(i))
		m, err := b.Machine(ctx, "r00001")
		if err != nil {
			t.Fatal(err)
		}
		if want := []sabakan.MachineState{sabakan.StateHealthy, sabakan.StateUnhealthy}[i%2]; m.Status.State != want {
			t.Fatalf("round %d: server b sees %s, want %s", i, m.Status.State, want)
		}
	}
}

func TestAssignIndices(t *testing.T) {
	ipam := testIPAM() // offset 3, indices 4..31
	cs := func(serial string, rack uint) sabakan.MachineSpec {
		return sabakan.MachineSpec{Serial: serial, Rack: rack, Role: "cs"}
	}
	boot := func(serial string, rack uint) sabakan.MachineSpec {
		return sabakan.MachineSpec{Serial: serial, Rack: rack, Role: "boot"}
	}
	tests := []struct {
		name  string
		used  map[uint]map[uint]bool
		specs []sabakan.MachineSpec
		want  []uint
		err   bool
	}{
		{"empty racks", nil, []sabakan.MachineSpec{cs("a", 0), boot("b", 0), cs("c", 1), cs("d", 0)}, []uint{4, 3, 4, 5}, false},
		{"fills gaps", map[uint]map[uint]bool{0: {4: true, 6: true}}, []sabakan.MachineSpec{cs("a", 0), cs("b", 0), cs("c", 0)}, []uint{5, 7, 8}, false},
		{"boot taken", map[uint]map[uint]bool{2: {3: true}}, []sabakan.MachineSpec{boot("a", 2)}, nil, true},
		{"rack full", map[uint]map[uint]bool{0: full(4, 30)}, []sabakan.MachineSpec{cs("a", 0), cs("b", 0)}, nil, true},
		{"last free index", map[uint]map[uint]bool{0: full(4, 30)}, []sabakan.MachineSpec{cs("a", 0)}, []uint{31}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := assignIndices(ipam, tt.used, tt.specs)
			if tt.err {
				if !errors.Is(err, sabakan.ErrConflict) {
					t.Errorf("err = %v, want ErrConflict", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("indices = %v, want %v", got, tt.want)
			}
		})
	}
}

func full(lo, hi uint) map[uint]bool {
	m := map[uint]bool{}
	for i := lo; i <= hi; i++ {
		m[i] = true
	}
	return m
}

// TestQueryJSON checks that the pre-encoded answer is byte for byte what
// encoding/json writes.
func TestQueryJSON(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := openStore(t, t.Name()+"/")
	s.opts.Now = func() time.Time { return now }
	if err := s.PutIPAM(ctx, testIPAM()); err != nil {
		t.Fatal(err)
	}
	sp := specs("j<&>", 20, 2)
	sp[3].Labels = nil
	sp[4].RetireDate = now.AddDate(1, 0, 0)
	if _, err := s.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	for i, d := range []time.Duration{0, time.Nanosecond, 1500 * time.Millisecond, 1e6 * time.Hour} {
		now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(d)
		ms, err := s.Query(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(ms)
		n, got, err := s.QueryJSON(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n != 20 || string(got) != string(want) {
			t.Errorf("case %d: QueryJSON differs from encoding/json:\n got %.300s\nwant %.300s", i, got, want)
		}
	}
	if n, got, _ := s.QueryJSON(ctx, &sabakan.Query{Has: sabakan.Filter{Racks: []uint{7}}}); n != 0 || string(got) != "[]" {
		t.Errorf("empty result: %d %s", n, got)
	}
}

func TestAuditExpiry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.Name()+"/")
	now := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	for _, age := range []int{90, 61, 60, 59, 0} {
		at := now.AddDate(0, 0, -age)
		s.opts.Now = func() time.Time { return at }
		if _, err := s.client.Txn(ctx).Then(s.AuditOp(ctx, sabakan.AuditIPAM, "config", "put", fmt.Sprint(age))).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	s.opts.Now = func() time.Time { return now }
	leader, err := etcdutil.Campaign(ctx, s.client, KeyJanitor, "test", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Resign(ctx)
	if err := s.ExpireAudit(ctx, leader); err != nil {
		t.Fatal(err)
	}
	var kept []string
	s.Logs(ctx, time.Time{}, time.Time{}, func(e *sabakan.AuditEntry) error {
		kept = append(kept, e.Detail)
		return nil
	})
	if got := strings.Join(kept, ","); got != "60,59,0" {
		t.Errorf("entries kept (by age in days): %s, want 60,59,0", got)
	}
}

// TestJanitorElection runs the janitor on two stores: one leads, and the
// other takes over when it stops. The sessions' TTL is long (a dead leader
// is not tested here): a stopped janitor resigns, and b must take over at
// once, not after a TTL; a short TTL only let a loaded machine expire a's
// session while it should still lead.
func TestJanitorElection(t *testing.T) {
	a := openStore(t, t.Name()+"/")
	b := openStore(t, t.Name()+"/")
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA := make(chan error, 1)
	go func() { doneA <- a.RunJanitor(ctxA, "a", 600) }()
	waitLeader := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := etcdutil.CurrentLeader(context.Background(), a.client, KeyJanitor)
			if err == nil && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("janitor leader = %q, want %q", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLeader("a")
	go b.RunJanitor(ctxB, "b", 600)
	time.Sleep(300 * time.Millisecond)
	waitLeader("a")
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("RunJanitor returned %v after cancellation, want nil", err)
	}
	waitLeader("b")
}

// TestWatchReloadsAfterCompaction stops a server's watch, changes and
// compacts etcd behind its back, and restarts the watch from its old
// revision: the watch must notice the compaction and reload the index.
func TestWatchReloadsAfterCompaction(t *testing.T) {
	ctx := context.Background()
	a := newStore(t)
	b := openStore(t, t.Name()+"/")
	if _, err := a.Register(ctx, specs("c", 3, 1)); err != nil {
		t.Fatal(err)
	}
	a.cancel()
	<-a.done
	more := specs("d", 5, 2)
	for i := range more {
		more[i].Role = "cs"
	}
	if _, err := b.Register(ctx, more); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetState(ctx, "c00001", sabakan.StateHealthy); err != nil {
		t.Fatal(err)
	}
	resp, err := b.client.Get(ctx, KeyVersion)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go a.watch(wctx)
	all, err := a.Query(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 8 {
		t.Errorf("after the reload the index holds %d machines, want 8", len(all))
	}
	m, _ := a.Machine(ctx, "c00001")
	if m == nil || m.Status.State != sabakan.StateHealthy {
		t.Errorf("after the reload c00001 is %+v", m)
	}
}

// hookKV runs before ahead of the first Get of a key under prefix.
type hookKV struct {
	clientv3.KV
	prefix string
	before func()
	once   sync.Once
}

func (h *hookKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if strings.HasPrefix(key, h.prefix) {
		h.once.Do(h.before)
	}
	return h.KV.Get(ctx, key, opts...)
}

// TestMutateWhileJanitorTidies changes a freshly registered machine while
// the janitor tidies its registration between the machine's read and the
// registration record's: the machine stays registered, so the change must
// succeed rather than answer 404.
func TestMutateWhileJanitorTidies(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	janitor := openStore(t, t.Name()+"/")
	if _, err := s.Register(ctx, specs("j", 1, 1)); err != nil {
		t.Fatal(err)
	}
	s.client.KV = &hookKV{KV: s.client.KV, prefix: KeyRegistrations, before: func() {
		// The first sweep rewrites the machine without its registration id,
		// the second deletes the record nobody names any more.
		for range 2 {
			if err := janitor.Sweep(ctx); err != nil {
				t.Error(err)
			}
		}
	}}
	if _, err := s.SetState(ctx, "j00000", sabakan.StateHealthy); err != nil {
		t.Fatalf("state change during the janitor's tidy: %v", err)
	}
	if n, _ := s.client.Get(ctx, KeyRegistrations, clientv3.WithPrefix(), clientv3.WithCountOnly()); n.Count != 0 {
		t.Fatalf("the janitor did not tidy the registration (%d records left): the test proves nothing", n.Count)
	}
	if m, err := s.Machine(ctx, "j00000"); err != nil || m.Status.State != sabakan.StateHealthy {
		t.Errorf("machine after the change: %+v, %v", m, err)
	}
}

// TestRegisterHugeAuditDetail registers machines whose audit detail (the
// JSON list of placements) is larger than etcd's 1.5 MiB request limit: the
// commit transaction, which carries it, must still fit. Serials full of
// characters JSON escapes make that happen with 2,000 machines; plain
// 10-character serials do with about 20,000.
func TestRegisterHugeAuditDetail(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sp := specs("", 2000, 80)
	for i := range sp {
		sp[i].Serial = strings.Repeat("<", 120) + fmt.Sprintf("%06d", i)
	}
	if _, err := s.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if all, err := s.Query(ctx, nil); err != nil || len(all) != len(sp) {
		t.Fatalf("%d machines visible, want %d (%v)", len(all), len(sp), err)
	}
	var reg *sabakan.AuditEntry
	s.Logs(ctx, time.Time{}, time.Time{}, func(e *sabakan.AuditEntry) error {
		if e.Action == "register" {
			reg = e
		}
		return nil
	})
	if reg == nil || reg.Instance != "" {
		t.Fatalf("audit entry of the registration: %+v", reg)
	}
	var placed []map[string]any
	if err := json.Unmarshal([]byte(reg.Detail), &placed); err != nil {
		t.Fatalf("detail is not a JSON list: %v", err)
	}
	if len(placed) == 0 || placed[0]["serial"] != sp[0].Serial {
		t.Errorf("detail starts with %v, want the first machine", placed[:min(1, len(placed))])
	}
}

func TestRegisteredDetailBounded(t *testing.T) {
	ms := make([]*sabakan.Machine, 5000)
	for i := range ms {
		ms[i] = &sabakan.Machine{Spec: sabakan.MachineSpec{Serial: fmt.Sprintf("%0128d", i), Rack: 1, IndexInRack: 4, Role: "cs"}}
	}
	for _, n := range []int{1, 3, 5000} {
		d := registeredDetail(ms[:n])
		if len(d) > maxRegisteredDetail {
			t.Errorf("%d machines: detail of %d bytes, more than %d", n, len(d), maxRegisteredDetail)
		}
		var list []struct {
			Serial  string `json:"serial"`
			Omitted int    `json:"omitted"`
		}
		if err := json.Unmarshal([]byte(d), &list); err != nil {
			t.Fatalf("%d machines: %v in %q", n, err, d[:min(len(d), 200)])
		}
		listed, omitted := len(list), 0
		if last := list[len(list)-1]; last.Omitted > 0 {
			listed, omitted = listed-1, last.Omitted
		}
		if listed+omitted != n || list[0].Serial != ms[0].Spec.Serial || (n < 1000) != (omitted == 0) {
			t.Errorf("%d machines: %d listed, %d omitted", n, listed, omitted)
		}
	}
}

// TestSweepTidiesLargeRecords tidies a registration of machines whose
// records are large (a long BMC type is valid input): the rewriting
// transactions must stay within etcd's request limit like the
// registration's own chunks.
func TestSweepTidiesLargeRecords(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sp := specs("big", 60, 3)
	for i := range sp {
		sp[i].BMC.Type = strings.Repeat("x", 30<<10)
	}
	if _, err := s.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	resp, _ := s.client.Get(ctx, KeyRegistrations, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Errorf("%d registration records left after two sweeps", resp.Count)
	}
}
