package resources

import (
	"encoding/json"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/units"
	"github.com/openneco/neco/pkg/podnet"
)

// podNetwork returns the pod network's objects by key when cluster.yml
// has one: podnet's custom resource definitions, the permissions of its
// daemons and the address pool "default" (other pools are the users').
func podNetwork(c *cke.Cluster) map[string][]byte {
	if !c.PodNetwork.Enabled() {
		return nil
	}
	out := map[string][]byte{}
	for _, crd := range podnet.CRDs() {
		k, err := Key(crd)
		if err != nil {
			panic(err) // the package's own manifests
		}
		out[k] = crd
	}
	labels := `{cke.openneco.io/managed: "true"}`
	out["ClusterRole/system:cke:podnet"] = []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:cke:podnet", labels: ` + labels + `}
rules:
- apiGroups: [` + podnet.Group + `]
  resources: [addresspools]
  verbs: [get, list, watch]
- apiGroups: [` + podnet.Group + `]
  resources: [addressblocks]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [nodes, namespaces]
  verbs: [get]
`)
	out["ClusterRoleBinding/system:cke:podnet"] = []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:cke:podnet", labels: ` + labels + `}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:cke:podnet"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "` + units.PodnetUser + `"}
`)
	subnets, err := json.Marshal(c.PodNetwork.Subnets)
	if err != nil {
		panic(err) // strings
	}
	bits, _ := json.Marshal(c.PodNetwork.Bits())
	out["AddressPool/"+podnet.DefaultPool] = []byte(`apiVersion: ` + podnet.APIVersion + `
kind: ` + podnet.KindAddressPool + `
metadata: {name: ` + podnet.DefaultPool + `, labels: ` + labels + `}
spec:
  subnets: ` + string(subnets) + `
  blockSizeBits: ` + string(bits) + `
`)
	return out
}
