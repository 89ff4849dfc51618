package kubeapi_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/testutil"
)

func TestKubeconfig(t *testing.T) {
	cfg := kubeapi.Kubeconfig("https://10.0.0.1:16443", []byte("CA"), []byte("CERT"), []byte("KEY"), "alice")
	var got map[string]any
	if err := yaml.Unmarshal(cfg, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []map[string]any{{
			"name":    "kubernetes",
			"cluster": map[string]string{"server": "https://10.0.0.1:16443", "certificate-authority-data": "Q0E="},
		}},
		"users": []map[string]any{{
			"name": "alice",
			"user": map[string]string{"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"},
		}},
		"contexts": []map[string]any{{
			"name":    "alice@kubernetes",
			"context": map[string]string{"cluster": "kubernetes", "user": "alice"},
		}},
		"current-context": "alice@kubernetes",
		"preferences":     map[string]any{},
	}
	if !jsonEqual(t, got, want) {
		t.Errorf("kubeconfig:\n%s", cfg)
	}
}

// kubectl reaches the API server with a kubeconfig Kubeconfig wrote, as the
// user of its certificate.
func TestKubeconfigKubectl(t *testing.T) {
	kubectl := testutil.RequireCommands(t, "kubectl")[0]
	cluster := kubetest.Shared(t)
	cert, key := cluster.IssueClient(t, "carol", "system:masters")
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeapi.Kubeconfig(cluster.URL, cluster.CACert, cert, key, "carol"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kubectl, "--kubeconfig="+path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl auth whoami: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "carol" {
		t.Errorf("kubectl is %q, want carol", got)
	}
}

func TestLoadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	embedded := filepath.Join(dir, "embedded")
	if err := os.WriteFile(embedded, kubeapi.Kubeconfig("https://10.0.0.1:16443", []byte("CA"), []byte("CERT"), []byte("KEY"), "alice"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := kubeapi.LoadKubeconfig(embedded)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Servers[0] != "https://10.0.0.1:16443" || string(cfg.CACert) != "CA" || string(cfg.ClientCert) != "CERT" || string(cfg.ClientKey) != "KEY" {
		t.Errorf("embedded: %+v", cfg)
	}

	for name, content := range map[string]string{"ca.crt": "CA2", "client.crt": "CERT2", "client.key": "KEY2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := filepath.Join(dir, "files")
	if err := os.WriteFile(files, []byte(`apiVersion: v1
kind: Config
clusters:
- {name: other, cluster: {server: https://1.1.1.1}}
- {name: cke, cluster: {server: "https://127.0.0.1:16443", certificate-authority: ca.crt}}
users:
- {name: u, user: {client-certificate: `+filepath.Join(dir, "client.crt")+`, client-key: client.key}}
contexts:
- {name: default, context: {cluster: cke, user: u}}
current-context: default
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = kubeapi.LoadKubeconfig(files)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Servers[0] != "https://127.0.0.1:16443" || string(cfg.CACert) != "CA2" || string(cfg.ClientCert) != "CERT2" || string(cfg.ClientKey) != "KEY2" {
		t.Errorf("files: %+v", cfg)
	}

	for name, content := range map[string]string{
		"no context":  "current-context: x\n",
		"malformed":   "clusters: [\n",
		"token":       "clusters: [{name: c, cluster: {server: https://a}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
		"missing key": "clusters: [{name: c, cluster: {server: https://a}}]\nusers: [{name: u, user: {client-key: /nonexistent}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
	} {
		p := filepath.Join(dir, "bad")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := kubeapi.LoadKubeconfig(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := kubeapi.LoadKubeconfig(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing file: no error")
	}
}
