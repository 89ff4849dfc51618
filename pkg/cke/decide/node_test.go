package decide

import (
	"maps"
	"testing"

	"github.com/openneco/neco/pkg/cke"
)

func TestPatchNode(t *testing.T) {
	c := &cke.Cluster{TaintControlPlane: true}
	n := &cke.Node{Address: "10.0.0.1", ControlPlane: true,
		Labels:      map[string]string{"zone": "rack0"},
		Annotations: map[string]string{"note": "new"},
		Taints:      []cke.Taint{{Key: "dedicated", Value: "db", Effect: "NoExecute"}}}

	// A node the kubelet just registered: its own labels and a taint
	// someone else set are kept.
	k := &cke.KubeNode{Name: "10.0.0.1",
		Labels: map[string]string{"kubernetes.io/hostname": "10.0.0.1"},
		Taints: []cke.Taint{{Key: "node.kubernetes.io/not-ready", Effect: "NoSchedule"}}}
	if NodeMetadataUpToDate(c, n, k) {
		t.Fatal("a bare node is up to date")
	}
	labels, annotations, taints := PatchNode(c, n, k)
	want := map[string]string{"kubernetes.io/hostname": "10.0.0.1", "zone": "rack0", cke.LabelControlPlane: ""}
	if !maps.Equal(labels, want) {
		t.Errorf("labels = %v, want %v", labels, want)
	}
	if annotations["note"] != "new" || annotations[cke.AnnotationManaged] == "" {
		t.Errorf("annotations = %v", annotations)
	}
	if len(taints) != 3 {
		t.Errorf("taints = %v", taints)
	}
	k.Labels, k.Annotations, k.Taints = labels, annotations, taints
	if !NodeMetadataUpToDate(c, n, k) {
		t.Fatal("not up to date after the patch")
	}

	// cluster.yml drops a label, the taint and the control-plane role:
	// exactly those go, the kubelet's stay.
	n.Labels, n.Taints, n.ControlPlane = nil, nil, false
	labels, _, taints = PatchNode(c, n, k)
	if want := map[string]string{"kubernetes.io/hostname": "10.0.0.1"}; !maps.Equal(labels, want) {
		t.Errorf("labels = %v, want %v", labels, want)
	}
	if len(taints) != 1 || taints[0].Key != "node.kubernetes.io/not-ready" {
		t.Errorf("taints = %v", taints)
	}

	// A changed taint value replaces the old one.
	n.Taints = []cke.Taint{{Key: "node.kubernetes.io/not-ready", Value: "x", Effect: "NoExecute"}}
	_, _, taints = PatchNode(c, n, k)
	if len(taints) != 1 || taints[0].Effect != "NoExecute" {
		t.Errorf("taints = %v", taints)
	}
}
