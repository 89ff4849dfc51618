package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/openneco/neco/pkg/cke"
)

// node is what the engine reads of a Node.
type node struct {
	Metadata struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		Labels          map[string]string `json:"labels,omitempty"`
		Annotations     map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Taints []taint `json:"taints,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions,omitempty"`
	} `json:"status"`
}

type taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
	// TimeAdded is set by the node lifecycle controller on NoExecute
	// taints; PatchNodeMetadata keeps it on the taints it keeps.
	TimeAdded *string `json:"timeAdded,omitempty"`
}

func (n *node) kubeNode() cke.KubeNode {
	kn := cke.KubeNode{
		Name:        n.Metadata.Name,
		Labels:      n.Metadata.Labels,
		Annotations: n.Metadata.Annotations,
	}
	for _, t := range n.Spec.Taints {
		kn.Taints = append(kn.Taints, cke.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			kn.Ready = c.Status == "True"
		}
	}
	return kn
}

// nodeListPage is the number of Nodes read per request.
const nodeListPage = 500

// Nodes reads every Node. A Node is Ready when its Ready condition is True.
func (c *Client) Nodes(ctx context.Context) ([]cke.KubeNode, error) {
	var nodes []cke.KubeNode
	cont := ""
	for {
		q := url.Values{"limit": {fmt.Sprint(c.nodePage)}}
		if cont != "" {
			q.Set("continue", cont)
		}
		var list struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []node `json:"items"`
		}
		if err := c.Get(ctx, "/api/v1/nodes?"+q.Encode(), &list); err != nil {
			return nil, err
		}
		for i := range list.Items {
			nodes = append(nodes, list.Items[i].kubeNode())
		}
		if list.Metadata.Continue == "" {
			return nodes, nil
		}
		cont = list.Metadata.Continue
	}
}

func nodePath(name string) string {
	return "/api/v1/nodes/" + url.PathEscape(name)
}

// patchRetries is how many times PatchNodeMetadata reads a Node again when
// it changed between the read and the patch.
const patchRetries = 5

// PatchNodeMetadata makes the labels, annotations and taints of Node name
// exactly these: it adds and changes what differs and removes the labels,
// annotations and taints not given (nil means none). Pass what others set
// and should stay (the kubelet's labels, the node controller's taints) too.
//
// It reads the Node and sends a JSON merge patch conditional on the
// resourceVersion it read, so nothing added meanwhile survives unseen; it
// reads again when the Node changed. It sends nothing when nothing differs.
func (c *Client) PatchNodeMetadata(ctx context.Context, name string, labels, annotations map[string]string, taints []cke.Taint) error {
	if err := checkName("node", name); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		var cur node
		if err := c.Get(ctx, nodePath(name), &cur); err != nil {
			return err
		}
		patch, changed := nodeMetadataPatch(&cur, labels, annotations, taints)
		if !changed {
			return nil
		}
		body, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		err = c.Do(ctx, http.MethodPatch, nodePath(name), ContentMergePatch, body, nil)
		if err == nil || !IsConflict(err) || attempt == patchRetries {
			return err
		}
	}
}

// nodeMetadataPatch is the merge patch making cur's labels, annotations
// and taints these, and whether anything changes.
func nodeMetadataPatch(cur *node, labels, annotations map[string]string, taints []cke.Taint) (map[string]any, bool) {
	meta := map[string]any{"resourceVersion": cur.Metadata.ResourceVersion}
	changed := false
	if p := mapPatch(cur.Metadata.Labels, labels); p != nil {
		meta["labels"] = p
		changed = true
	}
	if p := mapPatch(cur.Metadata.Annotations, annotations); p != nil {
		meta["annotations"] = p
		changed = true
	}
	patch := map[string]any{"metadata": meta}

	want := make([]taint, len(taints))
	for i, t := range taints {
		want[i] = taint{Key: t.Key, Value: t.Value, Effect: t.Effect}
		// Keep the time a kept taint was added.
		for _, ct := range cur.Spec.Taints {
			if ct.Key == t.Key && ct.Value == t.Value && ct.Effect == t.Effect {
				want[i].TimeAdded = ct.TimeAdded
				break
			}
		}
	}
	if !slices.EqualFunc(cur.Spec.Taints, want, func(a, b taint) bool {
		return a.Key == b.Key && a.Value == b.Value && a.Effect == b.Effect
	}) {
		changed = true
		// A merge patch replaces a list whole; null removes it.
		var v any
		if len(want) > 0 {
			v = want
		}
		patch["spec"] = map[string]any{"taints": v}
	}
	return patch, changed
}

// mapPatch is the merge patch of a map from cur to want: the keys to set
// and, as null, the keys to remove; nil when they are equal.
func mapPatch(cur, want map[string]string) map[string]any {
	if maps.Equal(cur, want) {
		return nil
	}
	p := map[string]any{}
	for k, v := range want {
		if cv, ok := cur[k]; !ok || cv != v {
			p[k] = v
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			p[k] = nil
		}
	}
	return p
}

// DeleteNode deletes Node name; a Node that does not exist is not an
// error.
func (c *Client) DeleteNode(ctx context.Context, name string) error {
	// DELETE /api/v1/nodes/ would delete every Node.
	if err := checkName("node", name); err != nil {
		return err
	}
	err := c.Do(ctx, http.MethodDelete, nodePath(name), "", nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}
