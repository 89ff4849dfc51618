package resources_test

import (
	"context"
	"testing"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/cke/resources"
)

// TestEngineResourcesApply applies every resource of the engine, in the
// engine's order, to a real API server (of the pinned Kubernetes): the
// manifests are valid objects of that version, and applying them twice
// changes nothing.
func TestEngineResourcesApply(t *testing.T) {
	k := kubetest.Start(t)
	client := k.Client(t)
	c := &cke.Cluster{Name: "test", ServiceSubnet: "10.68.0.0/16", DNSServers: []string{"10.72.0.1"}}
	all := resources.Engine(c)
	var keys []string
	for key := range all {
		keys = append(keys, key)
	}
	ctx := context.Background()
	versions := map[string]string{}
	for round := range 2 {
		for _, key := range resources.Sorted(keys) {
			obj, err := client.Apply(ctx, all[key], "cke", true)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if round == 1 && obj.ResourceVersion() != versions[key] {
				t.Errorf("%s changed when applied again", key)
			}
			versions[key] = obj.ResourceVersion()
		}
	}
	svc, err := client.GetObject(ctx, "v1", "Service", "kube-system", "cluster-dns")
	if err != nil {
		t.Fatal(err)
	}
	if ip, _ := svc.Field("spec", "clusterIP"); ip != "10.68.0.10" {
		t.Errorf("cluster DNS address = %v", ip)
	}
}
