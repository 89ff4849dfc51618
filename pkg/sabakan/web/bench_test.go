package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/sabakan"
)

// BenchmarkGetMachines measures GET /api/v1/machines over HTTP against an
// in-process server holding 10,000 machines (embedded etcd), from the
// request to the last byte: all of them, one rack (100) and one role (5,000),
// and all of them over GraphQL with the Kubernetes engine's query.
func BenchmarkGetMachines(b *testing.B) {
	ts := newTestServer(b)
	ctx := context.Background()
	ipam := mustIPAM(b)
	ipam.NodeIPv4Pool, ipam.BMCIPv4Pool = "10.64.0.0/12", "10.96.0.0/12"
	if err := ts.store.PutIPAM(ctx, ipam); err != nil {
		b.Fatal(err)
	}
	for p := range 10 {
		specs := make([]sabakan.MachineSpec, 1000)
		for i := range specs {
			specs[i] = sabakan.MachineSpec{Serial: fmt.Sprintf("m%02d-%04d", p, i), Rack: uint(p*40 + i/25),
				Role: []string{"cs", "ss"}[i%2], Labels: map[string]string{"product": "R640"}, BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}}
		}
		if _, err := ts.store.Register(ctx, specs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	const gql = `{"query":"{ searchMachines(notHaving: {roles: [\"boot\"], states: [RETIRED]}) { spec { serial labels { name value } rack indexInRack role ipv4 registerDate retireDate } status { state duration } } }"}`
	for _, c := range []struct{ name, query string }{
		{"all", ""}, {"rack", "?rack=5"}, {"role", "?role=ss"},
		{"graphql", gql},
		// graphql-go resolving every field, as before the fast path.
		{"graphql-go", gql},
	} {
		b.Run(c.name, func(b *testing.B) {
			ts.srv.gqlSlowOnly = c.name == "graphql-go"
			for range b.N {
				var resp *http.Response
				var err error
				if strings.HasPrefix(c.name, "graphql") {
					resp, err = http.Post(ts.http.URL+"/graphql", "application/json", strings.NewReader(c.query))
				} else {
					resp, err = http.Get(ts.http.URL + "/api/v1/machines" + c.query)
				}
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				b.SetBytes(n)
			}
		})
	}
}
