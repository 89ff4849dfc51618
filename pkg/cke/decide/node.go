package decide

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/openneco/neco/pkg/cke"
)

// managedKeys is the value of cke.AnnotationManaged: the keys the engine
// set on a node from cluster.yml.
type managedKeys struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
	Taints      []string `json:"taints,omitempty"`
}

// NodeMetadata is what the engine wants on n's Node object: cluster.yml's
// labels, annotations and taints plus the control-plane role label (and
// taint with taint_control_plane).
func NodeMetadata(c *cke.Cluster, n *cke.Node) (labels, annotations map[string]string, taints []cke.Taint) {
	labels = maps.Clone(n.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	annotations = maps.Clone(n.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	taints = slices.Clone(n.Taints)
	if n.ControlPlane {
		labels[cke.LabelControlPlane] = ""
		if c.TaintControlPlane {
			taints = append(taints, cke.Taint{Key: cke.LabelControlPlane, Effect: "NoSchedule"})
		}
	}
	keys := managedKeys{Labels: slices.Sorted(maps.Keys(labels)), Annotations: slices.Sorted(maps.Keys(annotations))}
	for _, t := range taints {
		keys.Taints = append(keys.Taints, t.Key)
	}
	slices.Sort(keys.Taints)
	keys.Taints = slices.Compact(keys.Taints)
	data, _ := json.Marshal(keys)
	annotations[cke.AnnotationManaged] = string(data)
	return labels, annotations, taints
}

// PatchNode returns k's metadata as the engine wants it: NodeMetadata set
// over what k has, minus keys the engine set before (recorded in
// cke.AnnotationManaged) that cluster.yml no longer has. Keys others set
// (the kubelet's labels, for one) are kept.
func PatchNode(c *cke.Cluster, n *cke.Node, k *cke.KubeNode) (labels, annotations map[string]string, taints []cke.Taint) {
	wantL, wantA, wantT := NodeMetadata(c, n)
	var before managedKeys
	_ = json.Unmarshal([]byte(k.Annotations[cke.AnnotationManaged]), &before) // unreadable: nothing to remove

	labels = maps.Clone(k.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	for _, key := range before.Labels {
		delete(labels, key)
	}
	maps.Copy(labels, wantL)

	annotations = maps.Clone(k.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	for _, key := range before.Annotations {
		delete(annotations, key)
	}
	maps.Copy(annotations, wantA)

	for _, t := range k.Taints {
		if !slices.Contains(before.Taints, t.Key) && !slices.ContainsFunc(wantT, func(w cke.Taint) bool { return w.Key == t.Key }) {
			taints = append(taints, t)
		}
	}
	taints = append(taints, wantT...)
	return labels, annotations, taints
}

// NodeMetadataUpToDate reports whether k already has what PatchNode wants.
func NodeMetadataUpToDate(c *cke.Cluster, n *cke.Node, k *cke.KubeNode) bool {
	labels, annotations, taints := PatchNode(c, n, k)
	return maps.Equal(labels, k.Labels) && maps.Equal(annotations, k.Annotations) && sameTaints(taints, k.Taints)
}

func sameTaints(a, b []cke.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for _, t := range a {
		if !slices.Contains(b, t) {
			return false
		}
	}
	return true
}
