package kubeapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
)

func TestApplyConfigMap(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	ctx := t.Context()
	name := uniqueName(t, "cm")

	// No namespace: the default one, as with kubectl.
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
data:
  a: "1"
  b: "2"
`, name)
	obj, err := c.Apply(ctx, []byte(manifest), "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Namespace() != "default" || obj.Name() != name || obj.Kind() != "ConfigMap" || obj.APIVersion() != "v1" {
		t.Errorf("applied %s %s %s/%s", obj.APIVersion(), obj.Kind(), obj.Namespace(), obj.Name())
	}
	if v, _ := obj.Field("data", "b"); v != "2" {
		t.Errorf("data.b = %v", v)
	}

	// Applying it again changes nothing.
	again, err := c.Apply(ctx, []byte(manifest), "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion() != obj.ResourceVersion() {
		t.Errorf("re-apply changed resourceVersion %s → %s", obj.ResourceVersion(), again.ResourceVersion())
	}

	// A changed field changes; a field no longer applied goes.
	changed := strings.Replace(manifest, `  b: "2"`, `  a2: "3"`, 1)
	got, err := c.Apply(ctx, []byte(changed), "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := got.Field("data"); !jsonEqual(t, data, map[string]string{"a": "1", "a2": "3"}) {
		t.Errorf("data after change = %v", data)
	}

	// JSON is accepted too, and read back with GetObject.
	jsonManifest := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"namespace":"default"},"data":{"a":"1","a2":"3"}}`, name)
	if _, err := c.Apply(ctx, []byte(jsonManifest), "test", false); err != nil {
		t.Fatal(err)
	}
	read, err := c.GetObject(ctx, "v1", "ConfigMap", "", name)
	if err != nil {
		t.Fatal(err)
	}
	if read.ResourceVersion() != got.ResourceVersion() {
		t.Errorf("the same fields in JSON changed resourceVersion %s → %s", got.ResourceVersion(), read.ResourceVersion())
	}

	t.Run("conflict", func(t *testing.T) {
		other := strings.Replace(changed, `a: "1"`, `a: "other"`, 1)
		_, err := c.Apply(ctx, []byte(other), "other", false)
		if !kubeapi.IsConflict(err) {
			t.Fatalf("another manager's field: err = %v, want a conflict", err)
		}
		obj, err := c.Apply(ctx, []byte(other), "other", true)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := obj.Field("data", "a"); v != "other" {
			t.Errorf("forced data.a = %v", v)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := c.Delete(ctx, "v1", "ConfigMap", "default", name); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetObject(ctx, "v1", "ConfigMap", "default", name); !kubeapi.IsNotFound(err) {
			t.Errorf("after delete: err = %v, want not found", err)
		}
		if err := c.Delete(ctx, "v1", "ConfigMap", "", name); err != nil {
			t.Errorf("second delete: %v", err)
		}
		if err := c.Delete(ctx, "v1", "ConfigMap", "default", ""); err == nil {
			t.Error("delete with an empty name accepted")
		}
		if err := c.Delete(ctx, "example.com/v1", "Nothing", "default", "x"); !errors.Is(err, kubeapi.ErrUnknownKind) {
			t.Errorf("delete of an unknown kind: err = %v, want ErrUnknownKind", err)
		}
	})
}

func TestApplyKinds(t *testing.T) {
	cluster := kubetest.Shared(t)
	c := cluster.Client(t)
	ctx := t.Context()
	ns := cluster.Namespace(t)
	name := uniqueName(t, "kinds")

	clusterRole := fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: %s
  labels:
    cke.cybozu.com/test: "true"
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list]
`, name)
	deployment := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 2
  selector:
    matchLabels: {app: test}
  template:
    metadata:
      labels: {app: test}
    spec:
      containers:
      - name: main
        image: ghcr.io/example/test:1.0
        args:
        - |
          a script with a line
          ---
          that is not a document separator
`, name, ns)

	for _, tt := range []struct {
		name, manifest, namespace string
	}{
		{"cluster-scoped", clusterRole, ""},
		{"namespaced", deployment, ns},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := c.Apply(ctx, []byte(tt.manifest), "test", false)
			if err != nil {
				t.Fatal(err)
			}
			if obj.Namespace() != tt.namespace {
				t.Errorf("namespace %q, want %q", obj.Namespace(), tt.namespace)
			}
			again, err := c.Apply(ctx, []byte(tt.manifest), "test", false)
			if err != nil {
				t.Fatal(err)
			}
			if again.ResourceVersion() != obj.ResourceVersion() {
				t.Errorf("re-apply changed resourceVersion %s → %s", obj.ResourceVersion(), again.ResourceVersion())
			}
		})
	}

	changed := strings.Replace(deployment, "replicas: 2", "replicas: 3", 1)
	obj, err := c.Apply(ctx, []byte(changed), "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := obj.Field("spec", "replicas"); fmt.Sprint(v) != "3" {
		t.Errorf("replicas = %v after change", v)
	}
	read, err := c.GetObject(ctx, "apps/v1", "Deployment", ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if read.ResourceVersion() != obj.ResourceVersion() {
		t.Errorf("GetObject resourceVersion %s, Apply's %s", read.ResourceVersion(), obj.ResourceVersion())
	}

	// A cluster-scoped object with a namespace is refused, not silently
	// moved.
	withNS := strings.Replace(clusterRole, "  labels:", "  namespace: default\n  labels:", 1)
	if _, err := c.Apply(ctx, []byte(withNS), "test", false); err == nil || !strings.Contains(err.Error(), "cluster-scoped") {
		t.Errorf("cluster-scoped with a namespace: err = %v", err)
	}
}

func TestApplyBadManifests(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	tests := []struct {
		name     string
		manifest string
		// unknown: the error is ErrUnknownKind.
		unknown bool
		// want is a part of the error message.
		want string
	}{
		{name: "empty", manifest: "", want: "not an object"},
		{name: "comments only", manifest: "# nothing\n---\n", want: "not an object"},
		{name: "not YAML", manifest: "{[", want: "manifest"},
		{name: "a list", manifest: "- a\n- b\n", want: "manifest"},
		{name: "no apiVersion", manifest: "kind: ConfigMap\nmetadata: {name: x}\n", want: "no apiVersion"},
		{name: "no kind", manifest: "apiVersion: v1\nmetadata: {name: x}\n", want: "no kind"},
		{name: "no name", manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", want: "no metadata.name"},
		{name: "no metadata", manifest: "apiVersion: v1\nkind: ConfigMap\n", want: "no metadata.name"},
		{name: "empty namespace", manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ''}\n", want: "empty metadata.namespace"},
		{name: "two objects", manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n", want: "more than one object"},
		{name: "unknown kind", manifest: "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n", unknown: true},
		{name: "unknown group", manifest: "apiVersion: frob.example.com/v1\nkind: Frobnicator\nmetadata: {name: x}\n", unknown: true},
		{name: "unknown version", manifest: "apiVersion: apps/v9\nkind: Deployment\nmetadata: {name: x}\n", unknown: true},
		{name: "bad apiVersion", manifest: "apiVersion: a/b/c\nkind: X\nmetadata: {name: x}\n", want: "bad apiVersion"},
		{name: "invalid object", manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n", want: "422"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Apply(t.Context(), []byte(tt.manifest), "test", false)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.unknown != errors.Is(err, kubeapi.ErrUnknownKind) {
				t.Errorf("err = %v; ErrUnknownKind: %v", err, !tt.unknown)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
	if _, err := c.Apply(t.Context(), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), "", false); err == nil {
		t.Error("an empty field manager accepted")
	}
}

// Kinds added by CustomResourceDefinitions are found: a group version not
// served before, then a kind added to a group version already read.
func TestApplyCustomResources(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	ctx := t.Context()
	group := uniqueName(t, "g") + ".kubetest.example.com"
	crd := func(kind, plural string) string {
		return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[2]s.%[3]s
spec:
  group: %[3]s
  scope: Namespaced
  names: {kind: %[1]s, plural: %[2]s, singular: %[4]s, listKind: %[1]sList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, kind, plural, group, strings.ToLower(kind))
	}
	object := func(kind string) string {
		return fmt.Sprintf("apiVersion: %s/v1\nkind: %s\nmetadata: {name: one}\nspec: {size: 3}\n", group, kind)
	}

	if _, err := c.Apply(ctx, []byte(object("Widget")), "test", false); !errors.Is(err, kubeapi.ErrUnknownKind) {
		t.Fatalf("before its CRD: err = %v, want ErrUnknownKind", err)
	}
	if _, err := c.Apply(ctx, []byte(crd("Widget", "widgets")), "test", false); err != nil {
		t.Fatal(err)
	}
	applyEventually(t, c, object("Widget"))

	// The group version is cached now, without Gadget.
	if _, err := c.Apply(ctx, []byte(crd("Gadget", "gadgets")), "test", false); err != nil {
		t.Fatal(err)
	}
	obj := applyEventually(t, c, object("Gadget"))
	if obj.Namespace() != "default" {
		t.Errorf("namespace = %q", obj.Namespace())
	}
	if v, _ := obj.Field("spec", "size"); fmt.Sprint(v) != "3" {
		t.Errorf("spec.size = %v", v)
	}
	if err := c.Delete(ctx, group+"/v1", "Gadget", "", "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetObject(ctx, group+"/v1", "Gadget", "", "one"); !kubeapi.IsNotFound(err) {
		t.Errorf("after delete: err = %v, want not found", err)
	}

	// When its CRD goes, the cached kind is found gone.
	if err := c.Delete(ctx, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "gadgets."+group); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := c.Apply(waitCtx, []byte(object("Gadget")), "test", false)
		if errors.Is(err, kubeapi.ErrUnknownKind) {
			break
		}
		if waitCtx.Err() != nil {
			t.Fatalf("Gadget after its CRD was deleted: err = %v, want ErrUnknownKind", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := c.GetObject(ctx, group+"/v1", "Widget", "", "one"); err != nil {
		t.Errorf("Widget, whose CRD stays: %v", err)
	}
}

func TestApplyMissingNamespace(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: " + uniqueName(t, "missing") + "}\n"
	if _, err := c.Apply(t.Context(), []byte(manifest), "test", false); !kubeapi.IsNotFound(err) {
		t.Errorf("err = %v, want not found", err)
	}
}

// applyEventually applies manifest until its kind is served: a new CRD's
// kind is served a moment after the CRD is created.
func applyEventually(t *testing.T, c *kubeapi.Client, manifest string) kubeapi.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		obj, err := c.Apply(ctx, []byte(manifest), "test", false)
		if err == nil {
			return obj
		}
		if !errors.Is(err, kubeapi.ErrUnknownKind) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
