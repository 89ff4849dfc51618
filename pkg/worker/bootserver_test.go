package worker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/pki"
)

// TestBootServerSteps checks the steps neco-worker runs on a boot server
// and their order, and that an unknown LRN is refused at start.
func TestBootServerSteps(t *testing.T) {
	root := t.TempDir()
	p := bootserver.NewPaths(root)
	ca, err := pki.NewCA("test server CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p.ServerCA), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ServerCA, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	clusterFile := filepath.Join(root, "cluster.yml")
	if err := os.WriteFile(clusterFile, []byte("servers:\n- {lrn: 0, address: 127.0.0.1}\n- {lrn: 1, address: 127.0.0.2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := BootServerConfig{LRN: 1, ClusterFile: clusterFile, Root: root, ShareDir: root,
		SabakanConfig: filepath.Join(root, "sabakan.yml"), SabakanURL: "http://127.0.0.1:10080"}
	steps, err := BootServerSteps(etcdtest.Client(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	if want := []string{"etcd", "vault", "sabakan-config", "registry-config", "registry-images", "sabakan-contents", "cke-template", "final-barrier"}; !slices.Equal(names, want) {
		t.Errorf("steps %v, want %v", names, want)
	}
	cfg.LRN = 2
	if _, err := BootServerSteps(etcdtest.Client(t), cfg); err == nil {
		t.Error("a boot server the cluster description does not name was accepted")
	}
}
