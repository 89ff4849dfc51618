package resources

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke"
)

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-system}\n": "ConfigMap/kube-system/a",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n":                      "Namespace/team",
	} {
		if got, err := Key([]byte(in)); err != nil || got != want {
			t.Errorf("Key = %q, %v; want %q", got, err, want)
		}
	}
	for _, bad := range []string{"kind: A\nmetadata: {name: a}", "apiVersion: v1\nmetadata: {name: a}", "apiVersion: v1\nkind: A",
		"apiVersion: v1\nkind: A\nmetadata: {name: a/b}", "[", ""} {
		if _, err := Key([]byte(bad)); !errors.Is(err, cke.ErrInvalid) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	withPods := &cke.Cluster{PodNetwork: cke.PodNetwork{Subnets: []string{"10.64.0.0/14"}}}
	for k, m := range Engine(withPods) {
		if got, err := Key(m); err != nil || got != k {
			t.Errorf("engine resource %s has key %s, %v", k, got, err)
		}
	}
}

func TestPodNetwork(t *testing.T) {
	if _, ok := Engine(&cke.Cluster{})["AddressPool/default"]; ok {
		t.Error("a pool without a pod network")
	}
	bits := 4
	all := Engine(&cke.Cluster{PodNetwork: cke.PodNetwork{Subnets: []string{"10.64.0.0/14", "10.80.0.0/24"}, BlockSizeBits: &bits}})
	for _, k := range []string{"CustomResourceDefinition/addresspools.podnet.openneco.io",
		"CustomResourceDefinition/addressblocks.podnet.openneco.io", "ClusterRole/system:cke:podnet",
		"ClusterRoleBinding/system:cke:podnet", "AddressPool/default"} {
		if _, ok := all[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	var pool struct {
		Spec struct {
			Subnets       []string `json:"subnets"`
			BlockSizeBits int      `json:"blockSizeBits"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(all["AddressPool/default"], &pool); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pool.Spec.Subnets, []string{"10.64.0.0/14", "10.80.0.0/24"}) || pool.Spec.BlockSizeBits != 4 {
		t.Errorf("pool = %+v", pool)
	}
	keys := Sorted(slices.Collect(maps.Keys(all)))
	if slices.Index(keys, "AddressPool/default") < slices.Index(keys, "CustomResourceDefinition/addresspools.podnet.openneco.io") {
		t.Errorf("the pool is applied before its definition: %v", keys)
	}
}

func TestSorted(t *testing.T) {
	got := Sorted([]string{"Deployment/a/x", "ClusterRoleBinding/b", "Namespace/a", "ConfigMap/a/c", "ClusterRole/b"})
	want := []string{"Namespace/a", "ClusterRole/b", "ClusterRoleBinding/b", "ConfigMap/a/c", "Deployment/a/x"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v", got)
	}
}
