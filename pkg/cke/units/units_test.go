package units

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/cke"
)

var inputs = Inputs{Artifacts: Artifacts{
	Kube:       Binary{Name: "kube-v1.37.2", SHA256: strings.Repeat("ab", 32)},
	Etcd:       Binary{Name: "etcd-v3.6.16", SHA256: strings.Repeat("cd", 32)},
	PauseImage: "registry.k8s.io/pause:3.10.2",
	HAProxy:    "/usr/sbin/haproxy",
	Podnet:     Binary{Name: "podnet", SHA256: strings.Repeat("12", 32)},
}, SecretsFingerprint: "s1"}

func cluster(cps, workers int) *cke.Cluster {
	c := &cke.Cluster{Name: "dc", ServiceSubnet: "10.68.0.0/16"}
	for i := range cps + workers {
		c.Nodes = append(c.Nodes, &cke.Node{Address: fmt.Sprintf("10.0.0.%d", i+1), User: "cke", ControlPlane: i < cps})
	}
	return c
}

// changed lists "address/service" whose hash differs between a and b.
func changed(a, b map[string]map[cke.Service]string) []string {
	var out []string
	for addr, svcs := range b {
		for s, h := range svcs {
			if a[addr][s] != h {
				out = append(out, addr+"/"+string(s))
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestHashesChangeExactlyWhatChanged(t *testing.T) {
	base := Hashes(cluster(1, 2), inputs)
	if got := changed(base, Hashes(cluster(1, 2), inputs)); len(got) != 0 {
		t.Fatalf("rendering is not deterministic: %v", got)
	}
	if n := len(base["10.0.0.1"]); n != 8 {
		t.Errorf("control plane runs %d services", n)
	}
	if n := len(base["10.0.0.2"]); n != 4 {
		t.Errorf("worker runs %d services", n)
	}

	tests := []struct {
		name string
		edit func(*cke.Cluster, *Inputs)
		want []string
	}{
		{"an API server flag", func(c *cke.Cluster, _ *Inputs) { c.Options.APIServer.ExtraArgs = []string{"--v=2"} },
			[]string{"10.0.0.1/kube-apiserver"}},
		{"a kubelet setting", func(c *cke.Cluster, _ *Inputs) { c.Options.Kubelet.Config = map[string]any{"maxPods": 200} },
			[]string{"10.0.0.1/kubelet", "10.0.0.2/kubelet", "10.0.0.3/kubelet"}},
		{"a node's label changes no unit", func(c *cke.Cluster, _ *Inputs) { c.Nodes[1].Labels = map[string]string{"a": "b"} }, nil},
		{"a new Kubernetes binary", func(_ *cke.Cluster, in *Inputs) { in.Artifacts.Kube.SHA256 = strings.Repeat("ef", 32) },
			[]string{"10.0.0.1/kube-apiserver", "10.0.0.1/kube-controller-manager", "10.0.0.1/kube-proxy", "10.0.0.1/kube-scheduler",
				"10.0.0.1/kubelet", "10.0.0.2/kube-proxy", "10.0.0.2/kubelet", "10.0.0.3/kube-proxy", "10.0.0.3/kubelet"}},
		{"a new encryption key", func(_ *cke.Cluster, in *Inputs) { in.SecretsFingerprint = "s2" },
			[]string{"10.0.0.1/kube-apiserver", "10.0.0.1/kube-controller-manager"}},
		{"a new podnet binary changes nothing without a pod network", func(_ *cke.Cluster, in *Inputs) { in.Artifacts.Podnet.SHA256 = strings.Repeat("34", 32) }, nil},
		{"a pod network starts podnet everywhere", func(c *cke.Cluster, _ *Inputs) { c.PodNetwork.Subnets = []string{"10.64.0.0/14"} },
			[]string{"10.0.0.1/podnet", "10.0.0.2/podnet", "10.0.0.3/podnet"}},
		{"a new pause image", func(_ *cke.Cluster, in *Inputs) { in.Artifacts.PauseImage = "registry.k8s.io/pause:3.11" },
			[]string{"10.0.0.1/containerd", "10.0.0.2/containerd", "10.0.0.3/containerd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, in := cluster(1, 2), inputs
			tt.edit(c, &in)
			if got := changed(base, Hashes(c, in)); !slices.Equal(got, tt.want) {
				t.Errorf("changed = %v, want %v", got, tt.want)
			}
		})
	}

	// A promoted control plane: the balancers and API servers learn of it,
	// the existing etcd member is not restarted (the initial cluster is
	// not a parameter).
	c := cluster(1, 2)
	c.Nodes[1].ControlPlane = true
	got := changed(base, Hashes(c, inputs))
	for _, want := range []string{"10.0.0.1/kube-apiserver", "10.0.0.1/rivers", "10.0.0.2/etcd", "10.0.0.2/kube-apiserver", "10.0.0.3/rivers"} {
		if !slices.Contains(got, want) {
			t.Errorf("promotion: %s unchanged (%v)", want, got)
		}
	}
	if slices.Contains(got, "10.0.0.1/etcd") {
		t.Errorf("promotion restarts the existing etcd member")
	}
}

func TestRender(t *testing.T) {
	c := cluster(3, 1)
	c.Options.APIServer.ExtraArgs = []string{"--profiling=true", "--audit-log-maxage=3"}
	c.Options.Kubelet.Config = map[string]any{"maxPods": 200, "failCgroupV1": false}
	u := Render(c, c.Nodes[0], inputs)

	api := u[cke.APIServer]
	if !slices.Contains(api.Command, "--profiling=true") || slices.Contains(api.Command, "--profiling=false") {
		t.Errorf("extra_args do not replace the engine's flag: %v", api.Command)
	}
	if !slices.Contains(api.Command, "--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379") {
		t.Errorf("etcd servers: %v", api.Command)
	}
	if api.Command[0] != "/opt/cke/bin/kube-v1.37.2-abababababab" {
		t.Errorf("binary path = %s", api.Command[0])
	}
	if !slices.Contains(api.Certs[0].IPSANs, "10.68.0.1") {
		t.Errorf("API server certificate lacks the kubernetes Service address: %+v", api.Certs[0])
	}
	if ServiceIP(c, 10) != "10.68.0.10" {
		t.Errorf("DNS address = %s", ServiceIP(c, 10))
	}

	etcd := u[cke.Etcd]
	if etcd.StartEnv["ETCD_INITIAL_CLUSTER"] != "10.0.0.1=https://10.0.0.1:2380,10.0.0.2=https://10.0.0.2:2380,10.0.0.3=https://10.0.0.3:2380" {
		t.Errorf("initial cluster = %v", etcd.StartEnv)
	}
	unit := string(etcd.SystemdUnit())
	if !strings.Contains(unit, "EnvironmentFile=-/etc/cke/etcd/start.env") || !strings.Contains(unit, "Restart=always") {
		t.Errorf("etcd unit:\n%s", unit)
	}

	rivers := u[cke.Rivers].Files[0].Content
	if strings.Count(rivers, "    server cp") != 3 || !strings.Contains(rivers, "bind 127.0.0.1:16443") ||
		!strings.Contains(rivers, "option httpchk GET /readyz") {
		t.Errorf("haproxy.cfg:\n%s", rivers)
	}
	kubelet := u[cke.Kubelet]
	if cfg := kubelet.Files[1].Content; !strings.Contains(cfg, "maxPods: 200") || !strings.Contains(cfg, "failCgroupV1: false") ||
		!strings.Contains(cfg, "enabled: false") {
		t.Errorf("kubelet config:\n%s", cfg)
	}
	if kubelet.Certs[0].CommonName != "system:node:10.0.0.1" || kubelet.Certs[0].Role != RoleKubelet {
		t.Errorf("kubelet cert = %+v", kubelet.Certs[0])
	}
	if u[cke.Containerd].SystemdUnit() != nil {
		t.Error("the engine writes containerd's unit")
	}
	w := Render(c, c.Nodes[3], inputs)
	if got := slices.Sorted(maps.Keys(w)); len(got) != 4 {
		t.Errorf("worker services = %v", got)
	}

	c.PodNetwork.Subnets = []string{"10.64.0.0/14"}
	c.Nodes[3].Hostname = "rack1-cs2"
	c.Options.Podnet.ExtraArgs = []string{"--metrics-address=0.0.0.0:9384"}
	p := Render(c, c.Nodes[3], inputs)[cke.Podnet]
	if p == nil {
		t.Fatal("no podnet unit with a pod network")
	}
	want := []string{"/opt/cke/bin/podnet-121212121212", "daemon", "--node-name=rack1-cs2", "--node-ip=10.0.0.4",
		"--kubeconfig=/etc/cke/podnet/kubeconfig", "--metrics-address=0.0.0.0:9384"}
	if !slices.Equal(p.Command, want) {
		t.Errorf("podnet command = %v, want %v", p.Command, want)
	}
	if p.Certs[0].CommonName != PodnetUser || p.Certs[0].Role != RoleClient {
		t.Errorf("podnet cert = %+v", p.Certs[0])
	}
}

func TestSystemdQuote(t *testing.T) {
	for in, want := range map[string]string{
		"--a=b":          "--a=b",
		"100%":           "100%%",
		"$HOME":          "$$HOME",
		"a b":            `"a b"`,
		`say "hi"`:       `"say \"hi\""`,
		"":               `""`,
		`C:\x`:           `"C:\\x"`,
		"--x=a;rm -rf /": `"--x=a;rm -rf /"`,
	} {
		if got := systemdQuote(in); got != want {
			t.Errorf("systemdQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := string(EnvFile(map[string]string{"B": "x y", "A": "1"})); got != "A=1\nB=\"x y\"\n" {
		t.Errorf("env file = %q", got)
	}
}

func TestArtifactsSupports(t *testing.T) {
	c := cluster(1, 1)
	none := inputs.Artifacts
	none.Podnet = Binary{}
	if err := none.Supports(c); err != nil {
		t.Errorf("no pod network, no podnet: %v", err)
	}
	c.PodNetwork.Subnets = []string{"10.64.0.0/14"}
	if err := none.Supports(c); !errors.Is(err, cke.ErrInvalid) || !strings.Contains(err.Error(), "-podnet-binary") {
		t.Errorf("a pod network without podnet: %v", err)
	}
	if err := inputs.Artifacts.Supports(c); err != nil {
		t.Errorf("a pod network with podnet: %v", err)
	}
}
