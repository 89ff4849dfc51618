package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
)

// Queries of the reference clients, verbatim.
const (
	// ckeSearchQuery is the Kubernetes engine's (cke/sabakan GraphQLQuery).
	ckeSearchQuery = `
query ckeSearch($having: MachineParams = null,
                $notHaving: MachineParams = {
                  roles: ["boot"]
                  states: [RETIRED]
                }) {
  searchMachines(having: $having, notHaving: $notHaving) {
    spec {
      serial
      labels {
        name
        value
      }
      rack
      indexInRack
      role
      ipv4
      registerDate
      retireDate
    }
    status {
      state
      duration
    }
  }
}
`
	// stateSetterQuery is sabakan-state-setter's search.
	stateSetterQuery = `
query search($having: MachineParams) {
  searchMachines(having: $having, notHaving: null) {
    spec {
      serial
      labels {
        name
        value
      }
      ipv4
    }
    status {
      state
    }
  }
}`
	// stateSetterMutation is sabakan-state-setter's state change.
	stateSetterMutation = `mutation {
  setMachineState(serial: "%s", state: %s) {
    state
  }
}`
	// rebootWorkerQuery is neco reboot-worker's.
	rebootWorkerQuery = `
query rebootSearch($having: MachineParams = null,
					$notHaving: MachineParams = {
						roles: ["boot"]
					}) {
	searchMachines(having: $having, notHaving: $notHaving) {
		spec {
			serial
			ipv4
			bmc {
				ipv4
			}
		}
	}
}
`
	// introspectionQuery is what GraphQL tools (GraphiQL, code generators)
	// send to learn the schema, with one ofType level less than GraphiQL's
	// (whose depth, 13, is over the depth limit of 12).
	introspectionQuery = `
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } }
}`
)

// aliases is a query of n aliases of searchMachines.
func aliases(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: searchMachines { spec { serial } }", i)
	}
	return b.String() + " }"
}

// TestGraphQLQueryLimits: a query whose answer would be huge is refused
// with 400 before it runs — 1,000 aliases of searchMachines took a server
// past 1.5 GB — while ordinary queries and those of the reference clients
// run as before.
func TestGraphQLQueryLimits(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	var more []sabakan.MachineSpec
	for i := range 300 {
		more = append(more, sabakan.MachineSpec{Serial: fmt.Sprintf("w%04d", i), Rack: uint(3 + i/20), Role: "worker",
			Labels: map[string]string{"product": "R640"}, BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}})
	}
	if _, err := ts.store.Register(context.Background(), more); err != nil {
		t.Fatal(err)
	}
	post := func(t *testing.T, query string, vars map[string]any) (int, map[string]any, time.Duration) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		start := time.Now()
		r := ts.do(t, "POST", "/graphql", string(body))
		took := time.Since(start)
		var out map[string]any
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatalf("answer %d %q: %v", r.status, r.body, err)
		}
		return r.status, out, took
	}

	t.Run("1000 aliases refused", func(t *testing.T) {
		st, out, took := post(t, aliases(1000), nil)
		errs, _ := out["errors"].([]any)
		if st != 400 || len(errs) != 1 || out["data"] != nil {
			t.Fatalf("1,000 aliases of searchMachines: %d after %s, %v", st, took, out)
		}
		e := errs[0].(map[string]any)
		if e["extensions"].(map[string]any)["type"] != gqlQueryTooComplex || !strings.Contains(e["message"].(string), "1000 searchMachines fields, at most 5") {
			t.Errorf("error = %v", e)
		}
		if took > 2*time.Second {
			t.Errorf("refusing took %s", took)
		}
		t.Logf("refused in %s: %s", took, e["message"])
	})

	for _, tt := range []struct {
		name, query string
		vars        map[string]any
		want        string // in the answer's data
	}{
		{"a normal query", `{ searchMachines(having: {racks: [1]}) { spec { serial } } }`, nil, "2345bcde"},
		{"five searches", aliases(5), nil, "w0299"},
		{"cke (tested verbatim above)", ckeQuery, nil, "w0299"},
		{"cke", ckeSearchQuery, nil, "w0299"},
		{"cke with variables", ckeSearchQuery, map[string]any{"having": map[string]any{"roles": []any{"worker"}}}, "w0299"},
		{"state setter", stateSetterQuery, nil, "w0299"},
		{"state setter, retired", stateSetterQuery, map[string]any{"having": map[string]any{"states": []any{"RETIRED"}}}, "searchMachines:[]"},
		{"state setter's mutation", fmt.Sprintf(stateSetterMutation, "w0001", "HEALTHY"), nil, "HEALTHY"},
		{"reboot-worker", rebootWorkerQuery, nil, "w0299"},
		{"machine", `query get($serial: ID!) { machine(serial: $serial) { spec { serial ipv4 } status { state } } }`, map[string]any{"serial": "w0007"}, "w0007"},
		{"introspection", introspectionQuery, nil, "MachineParams"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, out, took := post(t, tt.query, tt.vars)
			if st != 200 || out["errors"] != nil || !strings.Contains(fmt.Sprint(out["data"]), tt.want) {
				t.Errorf("%d after %s: errors %v, data %.300v", st, took, out["errors"], fmt.Sprint(out["data"]))
			}
		})
	}

	t.Run("too many root fields", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{")
		for i := range 101 {
			fmt.Fprintf(&b, ` m%d: machine(serial: "w%04d") { spec { serial } }`, i, i)
		}
		b.WriteString(" }")
		if st, out, _ := post(t, b.String(), nil); st != 400 || !strings.Contains(fmt.Sprint(out["errors"]), "101 fields at the root, at most 100") {
			t.Errorf("101 machine fields: %d %v", st, out)
		}
	})
	t.Run("invalid queries answered as before", func(t *testing.T) {
		for _, q := range []string{`{ nosuchfield }`, `{ searchMachines { spec { serial } }`, `{ ...Missing }`} {
			if st, out, _ := post(t, q, nil); st != 200 || out["errors"] == nil || out["data"] != nil {
				t.Errorf("%s: %d %v", q, st, out)
			}
		}
	})
}
