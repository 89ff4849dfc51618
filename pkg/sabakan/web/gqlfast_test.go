package web

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/store"
)

// TestFastSearchSameAnswer: the fast path of searchMachines answers the same
// bytes as graphql-go for every field, with aliases, arguments, variables,
// labels needing escapes and machines without labels; queries of other
// shapes fall back to graphql-go.
func TestFastSearchSameAnswer(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 23, 14, 33, 0, 48_000_123, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	st, err := store.Open(ctx, etcdtest.Client(t), store.Options{Hostname: "boot-0", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := New(Config{Store: st, Hostname: "boot-0"})
	ipam := mustIPAM(t)
	if err := st.PutIPAM(ctx, ipam); err != nil {
		t.Fatal(err)
	}
	specs := []sabakan.MachineSpec{
		{Serial: "plain", Rack: 0, Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "<b>&\"x\"", Rack: 1, Role: "ss", Labels: map[string]string{"z": "last", "a": "<&>\\\"\t\n\u2028é\x01"}, BMC: sabakan.MachineBMC{Type: "iDRAC-9"}},
		{Serial: "boot", Rack: 1, Role: "boot", Labels: map[string]string{"product": "R640"}, BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
	}
	if _, err := st.Register(ctx, specs); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(1500*time.Millisecond + 7))
	if _, err := st.SetState(ctx, "plain", sabakan.StateHealthy); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(90*time.Second + 3))

	const all = `spec { serial labels { name value } rack indexInRack role ipv4 registerDate retireDate bmc { bmcType ipv4 } } status { state timestamp duration } info { network { ipv4 { address netmask maskbits gateway } } bmc { ipv4 { address netmask maskbits gateway } } }`
	const reordered = `info { bmc { ipv4 { gateway address } } network { ipv4 { maskbits } } } status { duration state } spec { bmc { ipv4 bmcType } labels { value name } role serial }`
	tests := []struct {
		name, query, op string
		vars            map[string]any
		fast            bool
	}{
		{"every field", `{ searchMachines { ` + all + ` } }`, "", nil, true},
		{"reordered", `query { searchMachines { ` + reordered + ` } }`, "", nil, true},
		{"alias and arguments", `{ found: searchMachines(having: {racks: [1]}, notHaving: {roles: ["boot"]}) { spec { serial labels { name value } } } }`, "", nil, true},
		{"kubernetes engine", ckeQuery, "", nil, true},
		{"variables", ckeQuery, "ckeSearch", map[string]any{"having": map[string]any{"states": []any{"HEALTHY"}}}, true},
		{"no match", `{ searchMachines(having: {labels: [{name: "x", value: "y"}]}) { spec { serial } } }`, "", nil, true},
		// Errors and early answers fall back too.
		{"negative rack", `{ searchMachines(having: {racks: [-1]}) { spec { serial } } }`, "", nil, false},
		{"bad variable", ckeQuery, "", map[string]any{"having": map[string]any{"states": []any{"NOPE"}}}, false},
		{"unknown field", `{ searchMachines { spec { nope } } }`, "", nil, false},
		{"leaf with a selection", `{ searchMachines { spec { serial { x } } } }`, "", nil, false},
		{"object without a selection", `{ searchMachines { spec } }`, "", nil, false},
		{"typename", `{ searchMachines { __typename spec { serial } } }`, "", nil, false},
		{"inner alias", `{ searchMachines { s: spec { serial } } }`, "", nil, false},
		{"directive", `{ searchMachines { spec @include(if: false) { serial } status { state } } }`, "", nil, false},
		{"fragment", `{ searchMachines { ...F } } fragment F on Machine { spec { serial } }`, "", nil, false},
		{"duplicate field", `{ searchMachines { spec { serial } spec { rack } } }`, "", nil, false},
		{"two roots", `{ searchMachines { spec { serial } } machine(serial: "plain") { spec { serial } } }`, "", nil, false},
		{"mutation", `mutation { searchMachines { spec { serial } } }`, "", nil, false},
		{"wrong operation name", `query a { searchMachines { spec { serial } } }`, "b", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := httptest.NewRecorder()
			WriteJSON(want, 200, srv.graphql.Exec(ctx, tt.query, tt.op, tt.vars))
			got := httptest.NewRecorder()
			fast := srv.fastSearch(got, httptest.NewRequest("POST", "/graphql", nil), tt.query, tt.op, tt.vars)
			if fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
			if !fast {
				return
			}
			if got.Body.String() != want.Body.String() {
				t.Errorf("fast path:\n%s\ngraphql-go:\n%s", got.Body.String(), want.Body.String())
			}
			if !strings.Contains(want.Body.String(), `"data"`) {
				t.Errorf("graphql-go's answer has no data: %s", want.Body.String())
			}
		})
	}
}
