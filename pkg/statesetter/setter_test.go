package statesetter

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// healthy is a Health with no failed units.
type healthy struct{}

func (healthy) FailedUnits(context.Context) ([]string, error) { return nil, nil }

// TestSetterEndToEnd runs a real sabakan (store + REST API on the embedded
// etcd) and real serf members whose advertised addresses are the machines'
// node addresses; loopback 127.0.0.0/8 makes those bindable without setup.
func TestSetterEndToEnd(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(web.New(web.Config{Store: st, Hostname: "boot-0", Version: "test"}).Handler())
	t.Cleanup(ts.Close)
	sc, err := client.New(ts.URL, client.WithUser("state-setter-test"))
	if err != nil {
		t.Fatal(err)
	}
	ipam := &sabakan.IPAMConfig{
		MaxNodesInRack: 28, NodeIPv4Pool: "127.69.0.0/20", NodeRangeSize: 6, NodeRangeMask: 26,
		NodeIPPerNode: 3, NodeIndexOffset: 3, NodeGatewayOffset: 1,
		BMCIPv4Pool: "127.72.16.0/20", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1,
	}
	if err := sc.SetIPAM(ctx, ipam); err != nil {
		t.Fatal(err)
	}
	specs := []sabakan.MachineSpec{
		{Serial: "boot-0", Rack: 0, Role: "boot", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "worker-1", Rack: 0, Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "never-booted", Rack: 1, Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
	}
	if err := sc.Register(ctx, specs); err != nil {
		t.Fatal(err)
	}
	addr := func(serial string) string {
		m, err := sc.Machine(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		return m.Spec.IPv4[0]
	}

	startMember := func(serial, bind string, join []string) *membership.Agent {
		a, err := membership.Start(ctx, membership.Config{
			NodeName: serial, Bind: bind + ":0", Serial: serial, Join: join,
			CheckInterval: 100 * time.Millisecond, Profile: "local",
		}, healthy{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	boot := startMember("boot-0", addr("boot-0"), nil)
	worker := startMember("worker-1", addr("worker-1"), []string{boot.Addr()})
	// A member that is no machine keeps failure detection quick once the
	// worker dies (and must be ignored by the setter).
	startMember("observer", "127.69.15.250", []string{boot.Addr()})

	setter := &Setter{
		Inventory:   SabakanInventory{Client: sc},
		Members:     agentMembers{boot},
		Interval:    100 * time.Millisecond,
		GracePeriod: time.Second,
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- setter.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitState := func(serial string, want sabakan.MachineState) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := sc.State(ctx, serial)
			if err == nil && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %s (err %v), want %s", serial, got, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState("boot-0", sabakan.StateHealthy)
	waitState("worker-1", sabakan.StateHealthy)

	worker.Close() // the machine dies
	waitState("worker-1", sabakan.StateUnreachable)
	if s, _ := sc.State(ctx, "never-booted"); s != sabakan.StateUninitialized {
		t.Errorf("a machine that never booted became %s", s)
	}

	// The change is in the audit log with the setter as the user.
	found := false
	err = sc.Logs(ctx, time.Now().Add(-24*time.Hour), time.Now().Add(24*time.Hour), func(e *sabakan.AuditEntry) error {
		if e.Instance == "worker-1" && e.User == "state-setter-test" {
			found = true
		}
		return nil
	})
	if err != nil || !found {
		t.Errorf("no audit entry of the setter's change (err %v)", err)
	}
}

type agentMembers struct{ a *membership.Agent }

func (m agentMembers) Members(context.Context) ([]membership.Member, error) {
	return m.a.Members(), nil
}
