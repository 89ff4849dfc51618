package web

import (
	"errors"
	"strings"
	"testing"
)

func TestEstimateGraphQL(t *testing.T) {
	mult := gqlMultipliers{"searchMachines": 1000, "labels": 5, "ipv4": 3, "types": 30, "fields": 10}
	deep := strings.Repeat("{ a ", 100) + strings.Repeat("}", 100)
	// Each fragment spreads the next twice: 2^60 fields in the end.
	var exp strings.Builder
	exp.WriteString("{ ...F0 }")
	for i := range 60 {
		exp.WriteString(" fragment F" + itoa(i) + " on Query { ...F" + itoa(i+1) + " ...F" + itoa(i+1) + " }")
	}
	exp.WriteString(" fragment F60 on Query { searchMachines { spec { serial } } }")
	tests := []struct {
		name, query, op string
		want            gqlCost
		err             string // part of the error, if one is expected
	}{
		{name: "one field", query: `{ machine(serial: "a") { spec { serial } } }`,
			want: gqlCost{rootFields: 1, fields: 3, values: 3}},
		{name: "search", query: `{ searchMachines { spec { serial } } }`,
			want: gqlCost{rootFields: 1, searches: 1, fields: 3, values: 1000 * 3}},
		{name: "aliases count", query: `{ a: searchMachines { spec { serial } } b: searchMachines { spec { s1: serial s2: serial } } }`,
			want: gqlCost{rootFields: 2, searches: 2, fields: 7, values: 1000*3 + 1000*4}},
		{name: "lists multiply", query: `{ searchMachines { spec { ipv4 labels { name value } } } }`,
			want: gqlCost{rootFields: 1, searches: 1, fields: 6, values: 1000 * (1 + 1 + 3 + 5*3)}},
		{name: "kubernetes engine's query", query: ckeQuery,
			want: gqlCost{rootFields: 1, searches: 1, fields: 30, values: 1000 * 62}},
		{name: "fragments at the root", query: `query { ...A ...A } fragment A on Query { x: searchMachines { ...S } y: machine(serial: "a") { ...S } } fragment S on Machine { spec { serial } }`,
			want: gqlCost{rootFields: 4, searches: 2, fields: 12, values: 2 * (1000*3 + 3)}},
		{name: "inline fragments", query: `{ ... on Query { searchMachines { ... @include(if: true) { spec { serial } } } } }`,
			want: gqlCost{rootFields: 1, searches: 1, fields: 3, values: 3000}},
		{name: "punctuation in values and comments", query: `
# a comment { {
query q($v: MachineParams = {labels: [{name: "}{", value: """ { \""" """}]}) @x(a: [1, -2.5e+3, {b: "\"}"}]) {
  searchMachines(having: $v, notHaving: {roles: ["{"]}) { spec { serial } } # }
}`, want: gqlCost{rootFields: 1, searches: 1, fields: 3, values: 3000}},
		{name: "the named operation", op: "b", query: `query a { searchMachines { spec { serial } } } query b { machine(serial: "x") { spec { serial } } }`,
			want: gqlCost{rootFields: 1, fields: 3, values: 3}},
		{name: "no operation runs", query: `query a { searchMachines { spec { serial } } } query b { x }`},
		{name: "introspection", query: `{ __schema { types { name fields { name } } } }`,
			want: gqlCost{rootFields: 1, fields: 5, values: 1 + 30*(1+1+10*(1+1))}},
		{name: "exponential fragments saturate", query: exp.String(),
			want: gqlCost{rootFields: gqlCostCap, searches: gqlCostCap, fields: gqlCostCap, values: gqlCostCap}},
		{name: "unknown fragment", query: `{ ...X }`, err: "unknown fragment"},
		{name: "fragment cycle", query: `{ ...X } fragment X on Query { ...X }`, err: "spreads itself"},
		{name: "syntax", query: `{ searchMachines { spec { serial } }`, err: "expected a name"},
		{name: "deep", query: deep, err: "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := estimateGraphQL(tt.query, tt.op, mult)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("cost = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := estimateGraphQL(deep, "", mult); !errors.Is(err, errQueryLimit) {
		t.Errorf("a query nested 100 deep: %v, want errQueryLimit", err)
	}
}

func TestGraphQLCostCheck(t *testing.T) {
	limits := gqlLimits{rootFields: 100, searches: 5, fields: 1000, values: 500_000}
	tests := []struct {
		name string
		cost gqlCost
		want string // part of the error, "" for none
	}{
		{"within", gqlCost{rootFields: 5, searches: 5, fields: 1000, values: 500_000}, ""},
		{"searches", gqlCost{rootFields: 6, searches: 6, fields: 18, values: 18}, "6 searchMachines fields, at most 5"},
		{"root fields", gqlCost{rootFields: 101, fields: 303, values: 303}, "101 fields at the root, at most 100"},
		{"fields", gqlCost{rootFields: 1, fields: 1001, values: 1001}, "1001 fields with fragments expanded, at most 1000"},
		{"values", gqlCost{rootFields: 5, searches: 5, fields: 200, values: 5 * 10_000 * 40}, "estimated at 2000000 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cost.check(limits, 10_000)
			if tt.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, errQueryTooComplex) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want errQueryTooComplex with %q", err, tt.want)
			}
		})
	}
}

// FuzzEstimateGraphQL: the estimator never panics, and measures every query
// graphql-go finds valid (else such a query would be refused as one whose
// cost cannot be estimated).
func FuzzEstimateGraphQL(f *testing.F) {
	for _, q := range []string{ckeQuery, ckeSearchQuery, stateSetterQuery, rebootWorkerQuery, introspectionQuery,
		`{ a: searchMachines(having: {labels: [{name: "x", value: "y"}]}) { spec { serial } } }`,
		`query q($s: ID! = "a") @d { machine(serial: $s) { ... on Machine { status { state } } } }`,
		`mutation { setMachineState(serial: "a", state: HEALTHY) { state } }`} {
		f.Add(q)
	}
	srv := New(Config{})
	mult := gqlMultipliers{"searchMachines": 10, "labels": 2, "ipv4": 3}
	f.Fuzz(func(t *testing.T, q string) {
		_, err := estimateGraphQL(q, "", mult)
		if err != nil && !errors.Is(err, errQueryLimit) && len(srv.graphql.Validate(q)) == 0 {
			t.Errorf("graphql-go accepts %q, the estimator does not: %v", q, err)
		}
	})
}
