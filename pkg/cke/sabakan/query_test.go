package sabakan

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	sabakanapi "github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// TestQuery asks a real sabakan (store and API on the embedded etcd).
func TestQuery(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(web.New(web.Config{Store: st, Hostname: "boot-0", Version: "test"}).Handler())
	t.Cleanup(ts.Close)
	sc, err := client.New(ts.URL, client.WithUser("cke-test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.SetIPAM(ctx, &sabakanapi.IPAMConfig{
		MaxNodesInRack: 28, NodeIPv4Pool: "10.69.0.0/20", NodeRangeSize: 6, NodeRangeMask: 26,
		NodeIPPerNode: 3, NodeIndexOffset: 3, NodeGatewayOffset: 1,
		BMCIPv4Pool: "10.72.16.0/20", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1,
	}); err != nil {
		t.Fatal(err)
	}
	retire := time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC)
	err = sc.Register(ctx, []sabakanapi.MachineSpec{
		{Serial: "boot-0", Rack: 0, Role: "boot", BMC: sabakanapi.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "cs-1", Rack: 0, Role: "cs", BMC: sabakanapi.MachineBMC{Type: "IPMI-2.0"}, RetireDate: retire,
			Labels: map[string]string{"product": "r640"}},
		{Serial: "cs-2", Rack: 1, Role: "cs", BMC: sabakanapi.MachineBMC{Type: "IPMI-2.0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetState(ctx, "cs-1", sabakanapi.StateHealthy); err != nil {
		t.Fatal(err)
	}

	ms, err := Query(ctx, http.DefaultClient, ts.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ms, func(a, b Machine) int { return strings.Compare(a.Spec.Serial, b.Spec.Serial) })
	if len(ms) != 2 || ms[0].Spec.Serial != "cs-1" || ms[1].Spec.Serial != "cs-2" {
		t.Fatalf("machines = %+v (the boot server must be left out)", ms)
	}
	m := ms[0]
	if m.Spec.Rack != 0 || m.Spec.IndexInRack != 4 || m.Spec.Role != "cs" || m.Address() != "10.69.0.4" ||
		!m.Spec.RetireDate.Equal(retire) || !slices.Equal(m.Spec.Labels, []Label{{"product", "r640"}}) {
		t.Errorf("spec = %+v", m.Spec)
	}
	if m.Status.State != StateHealthy || ms[1].Status.State != StateUninitialized || m.Status.Duration < 0 {
		t.Errorf("status = %+v, %+v", m.Status, ms[1].Status)
	}

	// Not sabakan, or no sabakan: errors, not an empty list.
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	for _, url := range []string{notFound.URL, "http://127.0.0.1:1"} {
		if ms, err := Query(ctx, http.DefaultClient, url); err == nil {
			t.Errorf("Query(%s) = %v, want an error", url, ms)
		}
	}
	gqlErr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"data":null,"errors":[{"message":"boom"}]}`))
	}))
	t.Cleanup(gqlErr.Close)
	if _, err := Query(ctx, http.DefaultClient, gqlErr.URL); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("GraphQL error: %v", err)
	}
}
