package units

import (
	"fmt"
	"maps"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke"
)

// Vault PKI mounts (ckevault's layout) and the roles issued from them.
const (
	CAServer      = "cke/ca-server"
	CAEtcdPeer    = "cke/ca-etcd-peer"
	CAEtcdClient  = "cke/ca-etcd-client"
	CAKubernetes  = "cke/ca-kubernetes"
	CAAggregation = "cke/ca-kubernetes-aggregation"

	// Roles (ckevault's): server and client certificates, etcd peers
	// (both), administrators (system:masters) and kubelets (system:nodes,
	// both).
	RoleServer  = "server"
	RoleClient  = "client"
	RolePeer    = "peer"
	RoleAdmin   = "admin"
	RoleKubelet = "kubelet"
)

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local"

// rivers is HAProxy in front of every API server. A server takes traffic
// only while its /readyz answers 200 (checked every second over TLS with
// rivers' own client certificate), so a restarting API server is left out
// from the moment it begins to shut down (it keeps serving for its
// shutdown delay meanwhile) until it is ready again.
func (r renderer) rivers() *Unit {
	s := cke.Rivers
	d := Dir(s)
	var b strings.Builder
	b.WriteString(`global
    # Within a machine's open-file limit (2 descriptors a connection).
    maxconn 4000
    # A reload hands the listening socket over to the new process, so no
    # connection is refused meanwhile.
    stats socket /run/cke-rivers.sock mode 600 expose-fd listeners level user
defaults
    mode tcp
    # A connection refused by an API server that is stopping is tried
    # again on another one.
    retries 3
    option redispatch
    timeout connect 3s
    timeout client 24h
    timeout server 24h
    timeout check 2s
    default-server inter 1s fall 1 rise 2 check check-ssl verify required ca-file ` + path.Join(d, "ca.crt") + ` crt ` + path.Join(d, "client.pem") + `
frontend apiserver
    bind 127.0.0.1:` + fmt.Sprint(RiversPort) + `
    default_backend apiservers
backend apiservers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
`)
	for i, a := range r.controlPlaneAddrs() {
		fmt.Fprintf(&b, "    server cp%d %s:%d\n", i, a, APIServerPort)
	}
	cfg := r.file(s, "haproxy.cfg", b.String())
	cmd := withExtra([]string{r.in.Artifacts.HAProxy, "-Ws", "-f", cfg.Path}, r.c.Options.Rivers)
	return &Unit{Service: s, Command: cmd, Env: r.c.Options.Rivers.ExtraEnv,
		Files: []File{cfg, caFile(s, "ca.crt", CAKubernetes)},
		Certs: []CertSpec{{File: path.Join(d, "client"), CA: CAKubernetes, Role: RoleClient, CommonName: "system:cke:rivers", Bundle: true}}}
}

func (r renderer) etcd() *Unit {
	s, a := cke.Etcd, r.n.Address
	d := Dir(s)
	cmd := []string{r.in.Artifacts.Etcd.NodePath(),
		flag("name", a),
		flag("data-dir", EtcdDataDir),
		flag("listen-client-urls", fmt.Sprintf("https://%s:%d,https://127.0.0.1:%d", a, EtcdClientPort, EtcdClientPort)),
		flag("advertise-client-urls", fmt.Sprintf("https://%s:%d", a, EtcdClientPort)),
		flag("listen-peer-urls", fmt.Sprintf("https://%s:%d", a, EtcdPeerPort)),
		flag("initial-advertise-peer-urls", fmt.Sprintf("https://%s:%d", a, EtcdPeerPort)),
		flag("listen-metrics-urls", "http://127.0.0.1:2381"),
		flag("cert-file", path.Join(d, "server.crt")),
		flag("key-file", path.Join(d, "server.key")),
		flag("trusted-ca-file", path.Join(d, "client-ca.crt")),
		"--client-cert-auth",
		flag("peer-cert-file", path.Join(d, "peer.crt")),
		flag("peer-key-file", path.Join(d, "peer.key")),
		flag("peer-trusted-ca-file", path.Join(d, "peer-ca.crt")),
		"--peer-client-cert-auth",
		// etcd's gateway dials its own client URL and must authenticate.
		flag("client-cert-file", path.Join(d, "self-client.crt")),
		flag("client-key-file", path.Join(d, "self-client.key")),
		flag("auto-compaction-mode", "periodic"),
		flag("auto-compaction-retention", "1h"),
		flag("snapshot-count", "50000"),
	}
	initial := make([]string, 0, len(r.controlPlaneAddrs()))
	for _, cp := range r.controlPlaneAddrs() {
		initial = append(initial, fmt.Sprintf("%s=https://%s:%d", cp, cp, EtcdPeerPort))
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Etcd,
		Command: withExtra(cmd, r.c.Options.Etcd), Env: r.c.Options.Etcd.ExtraEnv,
		Files: []File{caFile(s, "client-ca.crt", CAEtcdClient), caFile(s, "peer-ca.crt", CAEtcdPeer)},
		Certs: []CertSpec{
			{File: path.Join(d, "server"), CA: CAServer, Role: RoleServer, CommonName: a,
				IPSANs: []string{a, "127.0.0.1"}, DNSSANs: []string{"localhost"}},
			{File: path.Join(d, "peer"), CA: CAEtcdPeer, Role: RolePeer, CommonName: a, IPSANs: []string{a}},
			{File: path.Join(d, "self-client"), CA: CAEtcdClient, Role: RoleClient, CommonName: "etcd-self"},
		},
		// The defaults for a new cluster; the engine replaces them when a
		// member joins an existing one.
		StartEnv: map[string]string{
			"ETCD_INITIAL_CLUSTER":       strings.Join(initial, ","),
			"ETCD_INITIAL_CLUSTER_STATE": "new",
			"ETCD_INITIAL_CLUSTER_TOKEN": "cke-" + r.c.Name,
		},
	}
}

func (r renderer) apiserver() *Unit {
	s, a := cke.APIServer, r.n.Address
	d := Dir(s)
	p := func(name string) string { return path.Join(d, name) }
	cmd := []string{r.in.Artifacts.Kube.NodePath(), "kube-apiserver",
		flag("advertise-address", a),
		flag("bind-address", "0.0.0.0"),
		flag("secure-port", fmt.Sprint(APIServerPort)),
		flag("etcd-servers", urls("https", r.controlPlaneAddrs(), EtcdClientPort)),
		flag("etcd-cafile", p("etcd-ca.crt")),
		flag("etcd-certfile", p("etcd-client.crt")),
		flag("etcd-keyfile", p("etcd-client.key")),
		flag("tls-cert-file", p("apiserver.crt")),
		flag("tls-private-key-file", p("apiserver.key")),
		flag("client-ca-file", p("ca.crt")),
		flag("kubelet-certificate-authority", p("ca.crt")),
		flag("kubelet-client-certificate", p("kubelet-client.crt")),
		flag("kubelet-client-key", p("kubelet-client.key")),
		flag("kubelet-preferred-address-types", "InternalIP,Hostname"),
		"--anonymous-auth=false",
		flag("authorization-mode", "Node,RBAC"),
		flag("enable-admission-plugins", "NodeRestriction"),
		"--allow-privileged=true",
		flag("service-cluster-ip-range", r.c.ServiceSubnet),
		flag("service-account-issuer", "https://kubernetes.default.svc"),
		flag("service-account-key-file", p("sa.pub")),
		flag("service-account-signing-key-file", p("sa.key")),
		flag("api-audiences", "https://kubernetes.default.svc"),
		flag("encryption-provider-config", p("encryption.yaml")),
		// The engine maintains default/kubernetes itself (only API
		// servers that run and answer are in it).
		flag("endpoint-reconciler-type", "none"),
		flag("requestheader-client-ca-file", p("aggregation-ca.crt")),
		flag("requestheader-allowed-names", "front-proxy-client"),
		flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
		flag("requestheader-group-headers", "X-Remote-Group"),
		flag("requestheader-username-headers", "X-Remote-User"),
		flag("proxy-client-cert-file", p("proxy-client.crt")),
		flag("proxy-client-key-file", p("proxy-client.key")),
		"--profiling=false",
		// Stopping, it fails /readyz at once but serves 3 s more, so that
		// the balancers (checking every second) send nothing new to it
		// before it closes; watches held through the balancers then get
		// 5 s instead of the 60 s default to end.
		flag("shutdown-delay-duration", "3s"),
		flag("shutdown-watch-termination-grace-period", "5s"),
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Kube,
		Command: withExtra(cmd, r.c.Options.APIServer), Env: r.c.Options.APIServer.ExtraEnv,
		Files: []File{
			caFile(s, "etcd-ca.crt", CAServer), caFile(s, "ca.crt", CAKubernetes), caFile(s, "aggregation-ca.crt", CAAggregation),
			{Path: p("sa.pub"), Secret: SecretServiceAccountPub, Mode: 0o644},
			{Path: p("sa.key"), Secret: SecretServiceAccountKey, Mode: 0o600},
			{Path: p("encryption.yaml"), Secret: SecretEncryptionConfig, Mode: 0o600},
		},
		Certs: []CertSpec{
			{File: p("apiserver"), CA: CAKubernetes, Role: RoleServer, CommonName: "kube-apiserver",
				IPSANs: []string{a, "127.0.0.1", ServiceIP(r.c, 1)},
				DNSSANs: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
					"kubernetes.default.svc." + ClusterDomain}},
			{File: p("etcd-client"), CA: CAEtcdClient, Role: RoleClient, CommonName: "kube-apiserver"},
			{File: p("kubelet-client"), CA: CAKubernetes, Role: RoleClient, CommonName: "kube-apiserver-kubelet-client"},
			{File: p("proxy-client"), CA: CAAggregation, Role: RoleClient, CommonName: "front-proxy-client"},
		},
		Secrets: r.in.SecretsFingerprint,
	}
}

// kubeconfigFiles is a component's kubeconfig through the node-local load
// balancer, with a client certificate named user.
func kubeconfigFiles(s cke.Service, user string) (File, CertSpec) {
	d := Dir(s)
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cke
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: default
  context: {cluster: cke, user: %s}
current-context: default
`, RiversPort, path.Join(d, "ca.crt"), user, path.Join(d, "client.crt"), path.Join(d, "client.key"), user)
	return File{Path: path.Join(d, "kubeconfig"), Content: kc, Mode: 0o644},
		CertSpec{File: path.Join(d, "client"), CA: CAKubernetes, Role: RoleClient, CommonName: user}
}

func (r renderer) controllerManager() *Unit {
	s := cke.ControllerManager
	kc, cert := kubeconfigFiles(s, "system:kube-controller-manager")
	cmd := []string{r.in.Artifacts.Kube.NodePath(), "kube-controller-manager",
		flag("kubeconfig", kc.Path),
		flag("authentication-kubeconfig", kc.Path),
		flag("authorization-kubeconfig", kc.Path),
		flag("bind-address", "127.0.0.1"),
		"--leader-elect=true",
		"--use-service-account-credentials=true",
		flag("service-account-private-key-file", path.Join(Dir(s), "sa.key")),
		flag("root-ca-file", path.Join(Dir(s), "ca.crt")),
		flag("cluster-name", r.c.Name),
		flag("service-cluster-ip-range", r.c.ServiceSubnet),
		"--profiling=false",
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Kube,
		Command: withExtra(cmd, r.c.Options.ControllerManager), Env: r.c.Options.ControllerManager.ExtraEnv,
		Files: []File{kc, caFile(s, "ca.crt", CAKubernetes),
			{Path: path.Join(Dir(s), "sa.key"), Secret: SecretServiceAccountKey, Mode: 0o600}},
		Certs:   []CertSpec{cert},
		Secrets: r.in.SecretsFingerprint,
	}
}

func (r renderer) scheduler() *Unit {
	s := cke.Scheduler
	kc, cert := kubeconfigFiles(s, "system:kube-scheduler")
	cmd := []string{r.in.Artifacts.Kube.NodePath(), "kube-scheduler",
		flag("kubeconfig", kc.Path),
		flag("authentication-kubeconfig", kc.Path),
		flag("authorization-kubeconfig", kc.Path),
		flag("bind-address", "127.0.0.1"),
		"--leader-elect=true",
		"--profiling=false",
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Kube,
		Command: withExtra(cmd, r.c.Options.Scheduler), Env: r.c.Options.Scheduler.ExtraEnv,
		Files: []File{kc, caFile(s, "ca.crt", CAKubernetes)},
		Certs: []CertSpec{cert},
	}
}

func (r renderer) containerd() *Unit {
	cfg := fmt.Sprintf(`# Written by the Kubernetes engine (CKE).
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # No CAP_SYS_RESOURCE in the data center's machines.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
`, r.in.Artifacts.PauseImage)
	return &Unit{
		Service: cke.Containerd,
		Files:   []File{{Path: "/etc/containerd/config.toml", Content: cfg, Mode: 0o644}},
	}
}

func (r renderer) kubelet() *Unit {
	s := cke.Kubelet
	d := Dir(s)
	kc, _ := kubeconfigFiles(s, "system:node:"+r.n.Nodename())
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": path.Join(d, "ca.crt")},
		},
		"authorization":            map[string]any{"mode": "Webhook"},
		"tlsCertFile":              path.Join(d, "client.crt"),
		"tlsPrivateKeyFile":        path.Join(d, "client.key"),
		"clusterDomain":            ClusterDomain,
		"clusterDNS":               []string{ServiceIP(r.c, 10)},
		"cgroupDriver":             "cgroupfs",
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"serverTLSBootstrap":       false,
		"rotateCertificates":       false,
	}
	maps.Copy(cfg, r.c.Options.Kubelet.Config)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	config := File{Path: path.Join(d, "config.yaml"), Content: string(data), Mode: 0o644}
	cmd := []string{r.in.Artifacts.Kube.NodePath(), "kubelet",
		flag("config", config.Path),
		flag("kubeconfig", kc.Path),
		flag("node-ip", r.n.Address),
		flag("hostname-override", r.n.Nodename()),
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Kube,
		Command: withExtra(cmd, r.c.Options.Kubelet.ServiceParams), Env: r.c.Options.Kubelet.ExtraEnv,
		Files: []File{kc, config, caFile(s, "ca.crt", CAKubernetes)},
		// One certificate for both sides: the API server's client and the
		// kubelet's own server (logs, exec).
		Certs: []CertSpec{{File: path.Join(d, "client"), CA: CAKubernetes, Role: RoleKubelet,
			CommonName: "system:node:" + r.n.Nodename(), IPSANs: []string{r.n.Address}, DNSSANs: nodeDNS(r.n)}},
		After: []string{cke.Containerd.Unit()},
	}
}

func nodeDNS(n *cke.Node) []string {
	if n.Hostname != "" {
		return []string{n.Hostname}
	}
	return nil
}

func (r renderer) proxy() *Unit {
	s := cke.Proxy
	kc, cert := kubeconfigFiles(s, "system:kube-proxy")
	mode := r.c.Options.Proxy.Mode
	if mode == "" {
		mode = "iptables"
	}
	cfg := map[string]any{
		"apiVersion":       "kubeproxy.config.k8s.io/v1alpha1",
		"kind":             "KubeProxyConfiguration",
		"clientConnection": map[string]any{"kubeconfig": kc.Path},
		"mode":             mode,
		"hostnameOverride": r.n.Nodename(),
		"bindAddress":      r.n.Address,
		// nf_conntrack_max is not namespaced: leave the host's alone.
		"conntrack":          map[string]any{"maxPerCore": 0},
		"metricsBindAddress": "127.0.0.1:10249",
		"nodePortAddresses":  []string{"primary"},
		"healthzBindAddress": "127.0.0.1:10256",
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	config := File{Path: path.Join(Dir(s), "config.yaml"), Content: string(data), Mode: 0o644}
	cmd := []string{r.in.Artifacts.Kube.NodePath(), "kube-proxy", flag("config", config.Path)}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Kube,
		Command: withExtra(cmd, r.c.Options.Proxy.ServiceParams), Env: r.c.Options.Proxy.ExtraEnv,
		Files: []File{kc, config, caFile(s, "ca.crt", CAKubernetes)},
		Certs: []CertSpec{cert},
	}
}

// PodnetUser is the name podnet's certificate gives it in the API.
const PodnetUser = "system:cke:podnet"

// podnet is the pod network's node daemon. It installs its own executable
// as the CNI plugin and writes the CNI configuration once it serves, so a
// node's pods get addresses only from a running daemon.
func (r renderer) podnet() *Unit {
	s := cke.Podnet
	kc, cert := kubeconfigFiles(s, PodnetUser)
	cmd := []string{r.in.Artifacts.Podnet.NodePath(), "daemon",
		flag("node-name", r.n.Nodename()),
		flag("node-ip", r.n.Address),
		flag("kubeconfig", kc.Path),
		flag("metrics-address", "127.0.0.1:9384"),
	}
	return &Unit{
		Service: s, Binary: &r.in.Artifacts.Podnet,
		Command: withExtra(cmd, r.c.Options.Podnet), Env: r.c.Options.Podnet.ExtraEnv,
		Files: []File{kc, caFile(s, "ca.crt", CAKubernetes)},
		Certs: []CertSpec{cert},
	}
}
