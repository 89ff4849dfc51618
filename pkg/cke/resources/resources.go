// Package resources renders the Kubernetes objects the engine keeps in
// every cluster (RBAC the components need) and merges them with the
// users' resources (ckecli resource set). Keys order the application:
// namespaces and RBAC before what uses them.
package resources

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke"
)

// KubeletAPIUser is the user the API servers present to kubelets
// (logs, exec, port-forward).
const KubeletAPIUser = "kube-apiserver-kubelet-client"

// Engine returns the engine's own resources by key: RBAC the components
// need, the cluster DNS and the pod network.
func Engine(c *cke.Cluster) map[string][]byte {
	out := clusterDNS(c)
	maps.Copy(out, podNetwork(c))
	maps.Copy(out, map[string][]byte{
		"ClusterRoleBinding/system:cke:kube-apiserver-to-kubelet": []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:cke:kube-apiserver-to-kubelet
  labels: {cke.openneco.io/managed: "true"}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: ` + KubeletAPIUser + `
`),
	})
	return out
}

// Key returns a resource's key, kind/namespace/name (kind/name when
// cluster-scoped), from its manifest; the manifest must be one object.
func Key(manifest []byte) (string, error) {
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(manifest, &obj); err != nil {
		return "", fmt.Errorf("%w: resource: %v", cke.ErrInvalid, err)
	}
	switch {
	case obj.APIVersion == "":
		return "", fmt.Errorf("%w: resource: no apiVersion", cke.ErrInvalid)
	case obj.Kind == "":
		return "", fmt.Errorf("%w: resource: no kind", cke.ErrInvalid)
	case obj.Metadata.Name == "":
		return "", fmt.Errorf("%w: resource %s: no metadata.name", cke.ErrInvalid, obj.Kind)
	case strings.Contains(obj.Metadata.Name+obj.Metadata.Namespace+obj.Kind, "/"):
		return "", fmt.Errorf("%w: resource: '/' in kind, name or namespace", cke.ErrInvalid)
	}
	if obj.Metadata.Namespace != "" {
		return obj.Kind + "/" + obj.Metadata.Namespace + "/" + obj.Metadata.Name, nil
	}
	return obj.Kind + "/" + obj.Metadata.Name, nil
}

// order ranks kinds: what others depend on first.
var order = []string{"Namespace", "CustomResourceDefinition", "PriorityClass", "ServiceAccount", "ClusterRole", "Role",
	"ClusterRoleBinding", "RoleBinding", "ConfigMap", "Secret", "Service"}

// Sorted returns keys in application order.
func Sorted(keys []string) []string {
	rank := func(k string) int {
		kind, _, _ := strings.Cut(k, "/")
		if i := slices.Index(order, kind); i >= 0 {
			return i
		}
		return len(order)
	}
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return out
}

// All merges the engine's resources and the users'; the engine's win.
func All(c *cke.Cluster, user map[string][]byte) map[string][]byte {
	out := maps.Clone(user)
	if out == nil {
		out = map[string][]byte{}
	}
	maps.Copy(out, Engine(c))
	return out
}
