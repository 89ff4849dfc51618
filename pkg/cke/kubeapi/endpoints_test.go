package kubeapi_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
)

// default/kubernetes, which the API server leaves to the engine with
// --endpoint-reconciler-type=none.
func TestSetEndpointsKubernetes(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	ctx := t.Context()
	const ns, name = "default", "kubernetes"
	epPath := "/api/v1/namespaces/default/endpoints/kubernetes"
	esPath := "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"

	// The API server made the Service but, without its reconciler, neither
	// the Endpoints nor the EndpointSlice.
	if err := c.Get(ctx, "/api/v1/namespaces/default/services/kubernetes", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Endpoints(ctx, ns, name); err != nil || got != nil {
		t.Fatalf("Endpoints before any = %v, %v; want none", got, err)
	}

	if err := c.SetEndpoints(ctx, ns, name, []string{"10.0.0.2", "10.0.0.1"}, 6443); err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, c, ns, name, []string{"10.0.0.1", "10.0.0.2"})
	ep := getObject(t, c, epPath)
	wantSubsets := []map[string]any{{
		"addresses": []map[string]any{{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}},
		"ports":     []map[string]any{{"name": "https", "port": 6443, "protocol": "TCP"}},
	}}
	if !jsonEqual(t, ep["subsets"], wantSubsets) {
		t.Errorf("Endpoints subsets = %v, want %v", ep["subsets"], wantSubsets)
	}
	if v := field(ep, "metadata.labels"); !jsonEqual(t, v, map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}) {
		t.Errorf("Endpoints labels = %v", v)
	}
	es := getObject(t, c, esPath)
	if v := field(es, "metadata.labels"); !jsonEqual(t, v, map[string]string{"kubernetes.io/service-name": "kubernetes"}) {
		t.Errorf("EndpointSlice labels = %v", v)
	}
	if es["addressType"] != "IPv4" {
		t.Errorf("EndpointSlice addressType = %v", es["addressType"])
	}
	wantEndpoints := []map[string]any{
		{"addresses": []string{"10.0.0.1"}, "conditions": map[string]bool{"ready": true}},
		{"addresses": []string{"10.0.0.2"}, "conditions": map[string]bool{"ready": true}},
	}
	if !jsonEqual(t, es["endpoints"], wantEndpoints) {
		t.Errorf("EndpointSlice endpoints = %v, want %v", es["endpoints"], wantEndpoints)
	}
	if want := []map[string]any{{"name": "https", "port": 6443, "protocol": "TCP"}}; !jsonEqual(t, es["ports"], want) {
		t.Errorf("EndpointSlice ports = %v, want %v", es["ports"], want)
	}

	// An update removes what is no longer listed.
	if err := c.SetEndpoints(ctx, ns, name, []string{"10.0.0.3"}, 6443); err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, c, ns, name, []string{"10.0.0.3"})
	if es := getObject(t, c, esPath); len(es["endpoints"].([]any)) != 1 {
		t.Errorf("EndpointSlice endpoints after update = %v", es["endpoints"])
	}

	// Without its EndpointSlice the Endpoints do not count; setting them
	// again makes it.
	if err := c.Do(ctx, http.MethodDelete, esPath, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, c, ns, name, nil)
	if err := c.SetEndpoints(ctx, ns, name, []string{"10.0.0.3"}, 6443); err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, c, ns, name, []string{"10.0.0.3"})

	// An EndpointSlice listing other addresses does not count either.
	patch := `{"endpoints":[{"addresses":["10.0.0.9"],"conditions":{"ready":true}}]}`
	if err := c.Do(ctx, http.MethodPatch, esPath, kubeapi.ContentMergePatch, []byte(patch), nil); err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, c, ns, name, nil)
}

func checkEndpoints(t *testing.T, c *kubeapi.Client, ns, name string, want []string) {
	t.Helper()
	got, err := c.Endpoints(t.Context(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Endpoints = %q, want %q", got, want)
	}
}

func TestSetEndpoints(t *testing.T) {
	cluster := kubetest.Shared(t)
	c := cluster.Client(t)
	ns := cluster.Namespace(t)

	t.Run("IPv6", func(t *testing.T) {
		if err := c.SetEndpoints(t.Context(), ns, "v6", []string{"fd00::2", "fd00::1"}, 443); err != nil {
			t.Fatal(err)
		}
		checkEndpoints(t, c, ns, "v6", []string{"fd00::1", "fd00::2"})
		es := getObject(t, c, "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices/v6")
		if es["addressType"] != "IPv6" {
			t.Errorf("addressType = %v", es["addressType"])
		}
	})

	t.Run("none", func(t *testing.T) {
		if err := c.SetEndpoints(t.Context(), ns, "none", []string{"10.1.0.1"}, 443); err != nil {
			t.Fatal(err)
		}
		if err := c.SetEndpoints(t.Context(), ns, "none", nil, 443); err != nil {
			t.Fatal(err)
		}
		checkEndpoints(t, c, ns, "none", nil)
		ep := getObject(t, c, "/api/v1/namespaces/"+ns+"/endpoints/none")
		if s, ok := ep["subsets"]; ok {
			t.Errorf("subsets = %v, want none", s)
		}
	})

	tests := []struct {
		name  string
		ns    string
		addrs []string
		port  int
	}{
		{name: "mixed families", ns: ns, addrs: []string{"10.0.0.1", "fd00::1"}, port: 443},
		{name: "not an IP", ns: ns, addrs: []string{"host.example"}, port: 443},
		{name: "port 0", ns: ns, addrs: []string{"10.0.0.1"}, port: 0},
		{name: "port too large", ns: ns, addrs: []string{"10.0.0.1"}, port: 65536},
		{name: "no namespace", addrs: []string{"10.0.0.1"}, port: 443},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.SetEndpoints(t.Context(), tt.ns, "bad", tt.addrs, tt.port); err == nil {
				t.Error("accepted")
			}
		})
	}
	if err := c.Get(t.Context(), "/api/v1/namespaces/"+ns+"/endpoints/bad", nil); !kubeapi.IsNotFound(err) {
		t.Errorf("bad endpoints written: %v", err)
	}
}
