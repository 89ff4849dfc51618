package kubeapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
)

func TestNodes(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	prefix := uniqueName(t, "nodes")
	createNode(t, c, prefix+"-ready",
		map[string]string{"cke.cybozu.com/role": "cs", "topology.kubernetes.io/zone": "rack1"},
		map[string]string{"cke.cybozu.com/note": "x"},
		[]map[string]any{
			{"key": "cke.cybozu.com/state", "value": "unreachable", "effect": "NoSchedule"},
			{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-02T03:04:05Z"},
		},
		ptr(true))
	createNode(t, c, prefix+"-notready", nil, nil, nil, ptr(false))
	createNode(t, c, prefix+"-registering", nil, nil, nil, nil)

	// Read in pages of two, so that the list is continued.
	kubeapi.SetLimits(c, kubeapi.MaxResponseBytes, 2)
	nodes, err := c.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cke.KubeNode{}
	for _, n := range nodes {
		if strings.HasPrefix(n.Name, prefix) {
			got[n.Name] = n
		}
	}
	// The API server's TaintNodesByCondition admission plugin taints every
	// new Node not-ready; the node lifecycle controller would remove it.
	notReady := cke.Taint{Key: "node.kubernetes.io/not-ready", Effect: "NoSchedule"}
	want := map[string]cke.KubeNode{
		prefix + "-ready": {
			Name:        prefix + "-ready",
			Labels:      map[string]string{"cke.cybozu.com/role": "cs", "topology.kubernetes.io/zone": "rack1"},
			Annotations: map[string]string{"cke.cybozu.com/note": "x"},
			Taints: []cke.Taint{
				{Key: "cke.cybozu.com/state", Value: "unreachable", Effect: "NoSchedule"},
				{Key: "node.kubernetes.io/unreachable", Effect: "NoExecute"},
				notReady,
			},
			Ready: true,
		},
		prefix + "-notready":    {Name: prefix + "-notready", Taints: []cke.Taint{notReady}},
		prefix + "-registering": {Name: prefix + "-registering", Taints: []cke.Taint{notReady}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Nodes:\n got %+v\nwant %+v", got, want)
	}
}

func TestPatchNodeMetadata(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	name := uniqueName(t, "patch")
	createNode(t, c, name,
		map[string]string{"kubernetes.io/hostname": name, "change": "old", "remove": "x"},
		map[string]string{"remove": "x", "keep": "y"},
		[]map[string]any{
			{"key": "remove", "effect": "NoSchedule"},
			{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-02T03:04:05Z"},
		},
		ptr(true))
	path := "/api/v1/nodes/" + name

	labels := map[string]string{"kubernetes.io/hostname": name, "change": "new", "add": "z"}
	annotations := map[string]string{"keep": "y"}
	taints := []cke.Taint{
		{Key: "node.kubernetes.io/unreachable", Effect: "NoExecute"},
		{Key: "cke.cybozu.com/state", Value: "retiring", Effect: "NoExecute"},
	}
	if err := c.PatchNodeMetadata(t.Context(), name, labels, annotations, taints); err != nil {
		t.Fatal(err)
	}
	n := getObject(t, c, path)
	if !jsonEqual(t, field(n, "metadata.labels"), labels) {
		t.Errorf("labels = %v, want %v", field(n, "metadata.labels"), labels)
	}
	if !jsonEqual(t, field(n, "metadata.annotations"), annotations) {
		t.Errorf("annotations = %v, want %v", field(n, "metadata.annotations"), annotations)
	}
	wantTaints := []map[string]any{
		// The time the node controller added a kept taint stays.
		{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-02T03:04:05Z"},
		{"key": "cke.cybozu.com/state", "value": "retiring", "effect": "NoExecute"},
	}
	if !jsonEqual(t, field(n, "spec.taints"), wantTaints) {
		t.Errorf("taints = %v, want %v", field(n, "spec.taints"), wantTaints)
	}
	if field(n, "status.conditions") == nil {
		t.Error("the patch lost the node's status")
	}

	t.Run("unchanged", func(t *testing.T) {
		rv := field(getObject(t, c, path), "metadata.resourceVersion")
		if err := c.PatchNodeMetadata(t.Context(), name, labels, annotations, taints); err != nil {
			t.Fatal(err)
		}
		if got := field(getObject(t, c, path), "metadata.resourceVersion"); got != rv {
			t.Errorf("resourceVersion %v → %v: nothing to change was written", rv, got)
		}
	})

	t.Run("remove all", func(t *testing.T) {
		if err := c.PatchNodeMetadata(t.Context(), name, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		n := getObject(t, c, path)
		for _, f := range []string{"metadata.labels", "metadata.annotations", "spec.taints"} {
			if v := field(n, f); v != nil {
				t.Errorf("%s = %v, want none", f, v)
			}
		}
	})

	t.Run("not found", func(t *testing.T) {
		err := c.PatchNodeMetadata(t.Context(), name+"-missing", labels, nil, nil)
		if !kubeapi.IsNotFound(err) {
			t.Errorf("err = %v, want not found", err)
		}
		if err := c.PatchNodeMetadata(t.Context(), "", labels, nil, nil); err == nil {
			t.Error("empty name accepted")
		}
	})
}

// A Node changed between PatchNodeMetadata's read and its patch is read
// again, and what was added meanwhile is removed too.
func TestPatchNodeMetadataConcurrentChange(t *testing.T) {
	cluster := kubetest.Shared(t)
	c := cluster.Client(t)
	name := uniqueName(t, "race")
	createNode(t, c, name, map[string]string{"a": "1"}, nil, nil, nil)

	// A proxy that, before the first patch passes, changes the Node.
	var patches atomic.Int32
	target, _ := url.Parse(cluster.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = adminTransport(t, cluster)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && patches.Add(1) == 1 {
			patch := `{"metadata":{"labels":{"intruder":"1"}}}`
			if err := c.Do(r.Context(), http.MethodPatch, "/api/v1/nodes/"+name, kubeapi.ContentMergePatch, []byte(patch), nil); err != nil {
				t.Error(err)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pc, err := kubeapi.New(kubeapi.Config{
		Servers: []string{srv.URL},
		CACert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(pc.Close)

	want := map[string]string{"b": "2"}
	if err := pc.PatchNodeMetadata(t.Context(), name, want, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := patches.Load(); n != 2 {
		t.Errorf("%d patches, want 2 (one conflicting, one after reading again)", n)
	}
	if got := field(getObject(t, c, "/api/v1/nodes/"+name), "metadata.labels"); !jsonEqual(t, got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
}

// adminTransport reaches the cluster as its administrator.
func adminTransport(t testing.TB, cluster *kubetest.Cluster) *http.Transport {
	t.Helper()
	pair, err := tls.X509KeyPair(cluster.Config.ClientCert, cluster.Config.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CACert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func TestDeleteNode(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	name := uniqueName(t, "delete")
	createNode(t, c, name, nil, nil, nil, nil)
	if err := c.DeleteNode(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(t.Context(), "/api/v1/nodes/"+name, nil); !kubeapi.IsNotFound(err) {
		t.Errorf("node after delete: err = %v, want not found", err)
	}
	if err := c.DeleteNode(t.Context(), name); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := c.DeleteNode(t.Context(), ""); err == nil {
		t.Error("empty name accepted (DELETE /api/v1/nodes/ deletes every Node)")
	}
}
