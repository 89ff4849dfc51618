package resources

import (
	"errors"
	"slices"
	"testing"

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
	for k, m := range Engine(&cke.Cluster{}) {
		if got, err := Key(m); err != nil || got != k {
			t.Errorf("engine resource %s has key %s, %v", k, got, err)
		}
	}
}

func TestSorted(t *testing.T) {
	got := Sorted([]string{"Deployment/a/x", "ClusterRoleBinding/b", "Namespace/a", "ConfigMap/a/c", "ClusterRole/b"})
	want := []string{"Namespace/a", "ClusterRole/b", "ClusterRoleBinding/b", "ConfigMap/a/c", "Deployment/a/x"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v", got)
	}
}
