package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func newClient(t *testing.T) *client.Client {
	t.Helper()
	st, err := store.Open(context.Background(), etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := web.New(web.Config{Store: st, Hostname: "boot", Version: "9.9"})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	tlsTS := httptest.NewTLSServer(srv.TLSHandler())
	t.Cleanup(tlsTS.Close)
	pool := x509.NewCertPool()
	pool.AddCert(tlsTS.Certificate())
	c, err := client.New(ts.URL, client.WithTLSServer(tlsTS.URL), client.WithTLSConfig(&tls.Config{RootCAs: pool}), client.WithUser("tester"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	if v, err := c.Version(ctx); err != nil || v != "9.9" {
		t.Errorf("Version = %q, %v", v, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.IPAM(ctx); !errors.Is(err, sabakan.ErrNotFound) || client.StatusOf(err) != 404 {
		t.Errorf("IPAM before set: %v", err)
	}
	ipam := &sabakan.IPAMConfig{MaxNodesInRack: 28, NodeIPv4Pool: "10.69.0.0/16", NodeRangeSize: 6, NodeRangeMask: 26, NodeIPPerNode: 3,
		NodeIndexOffset: 3, NodeGatewayOffset: 1, BMCIPv4Pool: "10.72.16.0/20", BMCIPv4Offset: "0.0.1.0", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1}
	if err := c.SetIPAM(ctx, ipam); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDHCP(ctx, &sabakan.DHCPConfig{LeaseMinutes: 5}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.DHCP(ctx); err != nil || d.LeaseMinutes != 5 {
		t.Errorf("DHCP = %+v, %v", d, err)
	}
	if ms, err := c.Machines(ctx, nil); err != nil || len(ms) != 0 {
		t.Errorf("Machines of an empty inventory = %v, %v", ms, err)
	}
	specs := []sabakan.MachineSpec{
		{Serial: "a1", Rack: 0, Role: "boot", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "a2", Rack: 0, Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
	}
	if err := c.Register(ctx, specs); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, specs[:1]); !errors.Is(err, sabakan.ErrConflict) || client.StatusOf(err) != 409 {
		t.Errorf("duplicate registration: %v", err)
	}
	if err := c.SetIPAM(ctx, ipam); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("IPAM with machines: %v", err)
	}
	ms, err := c.Machines(ctx, &sabakan.Query{Has: sabakan.Filter{Roles: []string{"cs"}}})
	if err != nil || len(ms) != 1 || ms[0].Spec.Serial != "a2" || ms[0].Spec.IPv4[0] != "10.69.0.4" {
		t.Fatalf("Machines(role=cs) = %+v, %v", ms, err)
	}
	if err := c.SetState(ctx, "a2", sabakan.StateHealthy); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx, "a2"); err != nil || st != sabakan.StateHealthy {
		t.Errorf("State = %q, %v", st, err)
	}
	if err := c.SetState(ctx, "a2", "bogus"); !errors.Is(err, sabakan.ErrBadRequest) || client.StatusOf(err) != 400 {
		t.Errorf("bad state: %v", err)
	}
	if err := c.SetLabel(ctx, "a2", "os", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveLabel(ctx, "a2", "nothere"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("remove missing label: %v", err)
	}
	date := time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)
	if err := c.SetRetireDate(ctx, "a2", date); err != nil {
		t.Fatal(err)
	}
	m, err := c.Machine(ctx, "a2")
	if err != nil || m.Spec.Labels["os"] != "v1" || !m.Spec.RetireDate.Equal(date) {
		t.Errorf("Machine = %+v, %v", m, err)
	}
	if _, err := c.Machine(ctx, "nobody"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("Machine(nobody): %v", err)
	}
	e, err := c.AddLog(ctx, sabakan.AuditPower, "a2", "power-cycle", "hung: no heartbeat")
	if err != nil || e.User != "tester" || e.Category != sabakan.AuditPower || e.Instance != "a2" || e.Action != "power-cycle" ||
		e.Detail != "hung: no heartbeat" || e.Revision == 0 || e.Host != "boot" {
		t.Errorf("AddLog = %+v, %v", e, err)
	}
	var last sabakan.AuditEntry
	if err := c.Logs(ctx, time.Time{}, time.Time{}, func(l *sabakan.AuditEntry) error { last = *l; return nil }); err != nil || e == nil || last != *e {
		t.Errorf("the log's last entry %+v (%v), want the one AddLog returned", last, err)
	}
	if _, err := c.AddLog(ctx, sabakan.AuditPower, "nobody", "power-on", ""); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("AddLog of an unknown machine: %v", err)
	}
	if _, err := c.AddLog(ctx, sabakan.AuditMachines, "a2", "power-on", ""); !errors.Is(err, sabakan.ErrBadRequest) || client.StatusOf(err) != 400 {
		t.Errorf("AddLog of a category clients may not append: %v", err)
	}
	if err := c.PutCrypt(ctx, "a2", "disk0", []byte("k3y")); err != nil {
		t.Fatal(err)
	}
	if k, err := c.Crypt(ctx, "a2", "disk0"); err != nil || string(k) != "k3y" {
		t.Errorf("Crypt = %q, %v", k, err)
	}
	if err := c.SetState(ctx, "a2", sabakan.StateRetiring); err != nil {
		t.Fatal(err)
	}
	if paths, err := c.DeleteCrypts(ctx, "a2"); err != nil || len(paths) != 1 {
		t.Errorf("DeleteCrypts = %v, %v", paths, err)
	}
	if err := c.SetState(ctx, "a2", sabakan.StateRetired); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMachine(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	var users []string
	err = c.Logs(ctx, time.Now().Add(-24*time.Hour), time.Time{}, func(e *sabakan.AuditEntry) error {
		users = append(users, e.User)
		return nil
	})
	if err != nil || len(users) < 10 || users[0] != "tester" {
		t.Errorf("Logs: %v, users %v", err, users)
	}
	var data struct {
		SearchMachines []struct {
			Spec struct{ Serial string }
		}
	}
	if err := c.GraphQL(ctx, `{ searchMachines { spec { serial } } }`, nil, &data); err != nil || len(data.SearchMachines) != 1 {
		t.Errorf("GraphQL = %+v, %v", data, err)
	}
	var gerr *client.GraphQLError
	if err := c.GraphQL(ctx, `{ machine(serial: "zz") { spec { serial } } }`, nil, &data); !errors.As(err, &gerr) || gerr.Extensions["type"] != "MACHINE_NOT_FOUND" {
		t.Errorf("GraphQL error = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := client.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err == nil || client.StatusOf(err) != 0 {
		t.Errorf("unreachable server: %v", err)
	}
	if _, err := client.New("localhost:10080"); err == nil {
		t.Error("a URL without scheme was accepted")
	}
}
