package kubeapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
)

// uniqueName is a lowercase name no other test uses.
func uniqueName(t testing.TB, prefix string) string {
	t.Helper()
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

// createNode creates a Node as a kubelet would register it; ready sets its
// Ready condition (nil: no condition).
func createNode(t testing.TB, c *kubeapi.Client, name string, labels, annotations map[string]string, taints []map[string]any, ready *bool) {
	t.Helper()
	n := map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata":   map[string]any{"name": name, "labels": labels, "annotations": annotations},
		"spec":       map[string]any{"taints": taints},
	}
	body, _ := json.Marshal(n)
	if err := c.Do(t.Context(), http.MethodPost, "/api/v1/nodes", kubeapi.ContentJSON, body, nil); err != nil {
		t.Fatal(err)
	}
	if ready == nil {
		return
	}
	status := "False"
	if *ready {
		status = "True"
	}
	now := time.Now().UTC().Format(time.RFC3339)
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":%q,"reason":"Test","lastHeartbeatTime":%q,"lastTransitionTime":%q}]}}`, status, now, now)
	if err := c.Do(t.Context(), http.MethodPatch, "/api/v1/nodes/"+name+"/status", kubeapi.ContentMergePatch, []byte(patch), nil); err != nil {
		t.Fatal(err)
	}
}

// getObject reads path into a generic object.
func getObject(t testing.TB, c *kubeapi.Client, path string) map[string]any {
	t.Helper()
	var o map[string]any
	if err := c.Get(t.Context(), path, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// field is the value at a dotted path of o ("metadata.labels").
func field(o map[string]any, path string) any {
	var v any = o
	for k := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// jsonEqual reports whether a and b encode the same JSON.
func jsonEqual(t testing.TB, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var va, vb any
	json.Unmarshal(ja, &va)
	json.Unmarshal(jb, &vb)
	ja, _ = json.Marshal(va)
	jb, _ = json.Marshal(vb)
	return string(ja) == string(jb)
}

func ptr[T any](v T) *T { return &v }
