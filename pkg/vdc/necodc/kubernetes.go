package necodc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v3 "github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// CKETemplate is the release's cluster.yml template on a boot server.
const CKETemplate = "/usr/share/neco/cke-template.yml"

// CKEOptions are the Kubernetes engine's flags in the virtual data center
// (/etc/default/cke): it reconciles, and asks sabakan, every 15 s rather
// than every minute, as the fabric's timers are short here too.
const CKEOptions = "CKE_OPTS=--interval=15s"

// kubeconfig is where Kubectl keeps boot-0's kubeconfig.
const kubeconfig = "/root/.kube/config"

// ignitionPrefixes are the files of a node's Ignition that ApplyIgnition
// writes: containerd's mirrors and the registries' CA, and the node's
// facts in /etc/neco (the pods' CNI configuration is podnet's, written on
// the node by its daemon). The rest is vdc's (the host name, the agent and
// its unit run from vdc's binds) or cannot apply in a container (sysctl).
var ignitionPrefixes = []string{"/etc/containerd/", "/etc/neco/"}

// ApplyIgnition plays, for the nspawn worker host, the part of a node's
// first boot that Ignition plays on a real one: it fetches the Ignition
// sabakan renders for the machine (the newest template of its role) and
// writes its users' SSH keys (root's authorizes the Kubernetes engine) and
// its files under /etc/containerd and /etc/neco.
func (d *DC) ApplyIgnition(ctx context.Context, host string) error {
	h, ok := d.Plan.Hosts[host]
	if !ok {
		return fmt.Errorf("%s: not a machine of the plan", host)
	}
	base := "http://" + d.Plan.Hosts[d.BootServers()[0]].Node0.String() + ":10080/api/v1/"
	out, err := d.quiet(ctx, host, "curl", "-sSf", base+"ignitions/"+h.Role)
	if err != nil {
		return fmt.Errorf("%s: the Ignition templates of role %s: %w", host, h.Role, err)
	}
	var ids []string
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) == 0 {
		return fmt.Errorf("%s: no Ignition template of role %s (%q)", host, h.Role, out)
	}
	url := base + "boot/ignitions/" + h.Serial + "/" + ids[len(ids)-1]
	out, err = d.quiet(ctx, host, "curl", "-sSf", url)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", host, url, err)
	}
	var cfg v3.Config
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		return fmt.Errorf("%s: the Ignition at %s: %w", host, url, err)
	}
	for _, u := range cfg.Passwd.Users {
		if len(u.SSHAuthorizedKeys) == 0 {
			continue
		}
		keys := make([]string, len(u.SSHAuthorizedKeys))
		for i, k := range u.SSHAuthorizedKeys {
			keys[i] = string(k)
		}
		home := "/home/" + u.Name
		if u.Name == "root" {
			home = "/root"
		}
		// Users the machine's tree does not have are the OS image's
		// business; the nspawn tree has root.
		if _, err := d.quiet(ctx, host, "id", u.Name); err != nil {
			continue
		}
		script := `install -d -m 700 -o "$1" "$2/.ssh" && printf '%s\n' "$3" > "$2/.ssh/authorized_keys" && chown "$1" "$2/.ssh/authorized_keys" && chmod 600 "$2/.ssh/authorized_keys"`
		if _, err := d.quiet(ctx, host, "sh", "-c", script, "sh", u.Name, home, strings.Join(keys, "\n")); err != nil {
			return fmt.Errorf("%s: SSH keys of %s: %w", host, u.Name, err)
		}
	}
	for _, f := range cfg.Storage.Files {
		if !hasAnyPrefix(f.Path, ignitionPrefixes) || f.Contents.Source == nil || !strings.HasPrefix(*f.Contents.Source, "data:") {
			continue
		}
		du, err := dataurl.DecodeString(*f.Contents.Source)
		if err != nil {
			return fmt.Errorf("%s: %s in its Ignition: %w", host, f.Path, err)
		}
		mode := 0o644
		if f.Mode != nil {
			mode = *f.Mode
		}
		script := `mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1" && chmod "$3" "$1"`
		if _, err := d.quiet(ctx, host, "sh", "-c", script, "sh", f.Path, string(du.Data), strconv.FormatInt(int64(mode), 8)); err != nil {
			return fmt.Errorf("%s: write %s: %w", host, f.Path, err)
		}
	}
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ApplyIgnitions runs ApplyIgnition at once on every worker that is a
// machine in sabakan (a removed one has no Ignition).
func (d *DC) ApplyIgnitions(ctx context.Context) error {
	return d.phase("the workers take their Ignition (SSH keys, containerd's mirrors and the registries' CA)", func() error {
		ms, err := d.Machines(ctx)
		if err != nil {
			return err
		}
		registered := map[string]bool{}
		for _, m := range ms {
			registered[m.Spec.Serial] = true
		}
		var workers []string
		for _, w := range d.Workers() {
			if registered[d.Plan.Hosts[w].Serial] {
				workers = append(workers, w)
			} else {
				d.logf("    %s: not in sabakan, no Ignition", w)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(workers))
		for i, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = d.ApplyIgnition(ctx, w)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

// EnableKubernetes makes the workers one Kubernetes cluster, as an
// operator would: the workers' Ignition applied, then `neco init-data
// --cke-template` on boot-0 with controlPlanes control planes. The boot
// servers' Kubernetes engine does the rest by itself.
func (d *DC) EnableKubernetes(ctx context.Context, controlPlanes int) error {
	if err := d.ApplyIgnitions(ctx); err != nil {
		return err
	}
	return d.phase("the Kubernetes engine builds the cluster from sabakan", func() error {
		for _, b := range d.BootServers() {
			if _, err := d.Exec(ctx, b, "sh", "-c", "echo "+CKEOptions+" > /etc/default/cke && systemctl restart cke"); err != nil {
				return err
			}
		}
		_, err := d.Exec(ctx, d.BootServers()[0], "neco", "init-data", "--cke-template", CKETemplate,
			"--control-planes", strconv.Itoa(controlPlanes))
		return err
	})
}

// Kubectl runs kubectl on boot-0 with an admin kubeconfig, issued with
// `ckecli kubernetes issue` (a boot server's Vault token, neco vault
// login) when boot-0 has none or it is an hour old. It talks to the API
// server that answered last, else to the control planes of cluster.yml in
// turn: a boot server has no node-local load balancer.
func (d *DC) Kubectl(ctx context.Context, args ...string) (string, error) {
	boot0 := d.BootServers()[0]
	// A 2-hour certificate, replaced after one hour.
	const issue = `set -e; f=` + kubeconfig + `
if [ -n "$(find "$f" -mmin -60 2>/dev/null)" ]; then exit 0; fi
mkdir -p "$(dirname "$f")"
VAULT_TOKEN=$(neco vault login) ckecli kubernetes issue --ttl 2h > "$f.new"
mv "$f.new" "$f"`
	if _, err := d.quiet(ctx, boot0, "sh", "-c", issue); err != nil {
		return "", fmt.Errorf("a kubeconfig on %s: %w", boot0, err)
	}
	d.apiMu.Lock()
	servers := []string{d.apiServer}
	d.apiMu.Unlock()
	if cps, _, err := d.ClusterNodes(ctx); err == nil {
		for _, a := range cps {
			if s := "https://" + a + ":6443"; s != servers[0] {
				servers = append(servers, s)
			}
		}
	}
	var errs []error
	for _, s := range servers {
		if s == "" {
			continue
		}
		// The API server's errors (a missing object) are answers: only a
		// server that cannot be reached makes the next one tried.
		out, err := d.quiet(ctx, boot0, append([]string{"kubectl", "--kubeconfig", kubeconfig, "--server", s, "--request-timeout", "10s"}, args...)...)
		if err == nil || !unreachable(err) {
			d.apiMu.Lock()
			d.apiServer = s
			d.apiMu.Unlock()
			return out, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return "", errors.New("kubectl: no control plane in cluster.yml")
	}
	return "", errors.Join(errs...)
}

// ClusterNodes reads cluster.yml's control planes and workers (addresses)
// on boot-0.
func (d *DC) ClusterNodes(ctx context.Context) (cps, workers []string, err error) {
	out, err := d.quiet(ctx, d.BootServers()[0], "ckecli", "cluster", "get", "-o", "json")
	if err != nil {
		return nil, nil, err
	}
	var c struct {
		Nodes []struct {
			Address      string `json:"address"`
			ControlPlane bool   `json:"control_plane"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return nil, nil, fmt.Errorf("ckecli cluster get: %w", err)
	}
	for _, n := range c.Nodes {
		if n.ControlPlane {
			cps = append(cps, n.Address)
		} else {
			workers = append(workers, n.Address)
		}
	}
	return cps, workers, nil
}

// unreachable tells kubectl's failures to reach a server from its answers.
func unreachable(err error) bool {
	s := err.Error()
	for _, m := range []string{"connection refused", "no route to host", "i/o timeout", "Client.Timeout", "context deadline exceeded", "Unable to connect", "was refused", "net/http: TLS handshake timeout", "EOF"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// KubeNode is what WaitKubernetes reads of a Node.
type KubeNode struct {
	Name         string
	Ready        bool
	ControlPlane bool
	Taints       []string // key=value:effect
}

// KubeNodes lists the cluster's nodes.
func (d *DC) KubeNodes(ctx context.Context) ([]KubeNode, error) {
	out, err := d.Kubectl(ctx, "get", "nodes", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Taints []struct{ Key, Value, Effect string } `json:"taints"`
			} `json:"spec"`
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	nodes := make([]KubeNode, 0, len(list.Items))
	for _, it := range list.Items {
		_, cp := it.Metadata.Labels["node-role.kubernetes.io/control-plane"]
		n := KubeNode{Name: it.Metadata.Name, ControlPlane: cp}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready = c.Status == "True"
			}
		}
		for _, t := range it.Spec.Taints {
			n.Taints = append(n.Taints, t.Key+"="+t.Value+":"+t.Effect)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// WaitKubernetes waits until the cluster has want nodes, every one Ready,
// and the engine has nothing left to do.
func (d *DC) WaitKubernetes(ctx context.Context, want int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		nodes, err := d.KubeNodes(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		ready := 0
		for _, n := range nodes {
			if n.Ready {
				ready++
			}
		}
		last = fmt.Sprintf("%d nodes, %d Ready", len(nodes), ready)
		if len(nodes) != want || ready != want {
			return false
		}
		out, err := d.quiet(ctx, d.BootServers()[0], "ckecli", "status", "-o", "json")
		var st struct {
			Phase   string `json:"phase"`
			Waiting string `json:"waiting"`
		}
		if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
			last += fmt.Sprintf("; ckecli status: %v %v", err, jerr)
			return false
		}
		last += "; engine: " + st.Phase + " " + st.Waiting
		return st.Phase == "completed"
	})
	if err != nil {
		status, _ := d.quiet(context.Background(), d.BootServers()[0], "ckecli", "status")
		return fmt.Errorf("the Kubernetes cluster: %s after %s\n%s", last, limit, status)
	}
	return nil
}

// ServePort is where ServeManifest's pods answer on their node.
const ServePort = 18080

// ServeManifest is a Deployment of agnhost netexec (GET /hostname answers
// the node's name) on the nodes' network, as the pods' own network reaches
// only their node yet: three pods, one per node, spread across racks
// (a rack whose nodes are all tainted, by the engine for an unreachable or
// retiring machine, does not count), that leave an unreachable node after
// 10 s.
const ServeManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: serve, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: serve}}
  template:
    metadata: {labels: {app: serve}}
    spec:
      hostNetwork: true
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: serve}}}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: serve}}}
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.66.1
        args: [netexec, --http-port=18080, --udp-port=-1]
`

// PodsManifest is agnhost netexec on the pod network (GET /hostname answers
// the pod's name on port 8080): three pods, one per rack, behind the
// ClusterIP Service "pods" and the NodePort Service "pods-np" (30080).
const PodsManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: pods, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: pods}}
  template:
    metadata: {labels: {app: pods}}
    spec:
      # One pod per rack, counted per revision (a rollout's old pods do
      # not skew the new ones).
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor,
         labelSelector: {matchLabels: {app: pods}}, matchLabelKeys: [pod-template-hash]}
      containers:
      - name: netexec
        image: ` + images.AgnhostName + `
        args: [netexec, --http-port=8080, --udp-port=-1]
        readinessProbe:
          httpGet: {path: /hostname, port: 8080}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {name: pods, namespace: default}
spec:
  selector: {app: pods}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: pods-np, namespace: default}
spec:
  type: NodePort
  selector: {app: pods}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
`

// Apply writes manifest to boot-0 as /root/NAME.yaml and applies it with
// kubectl.
func (d *DC) Apply(ctx context.Context, name, manifest string) (string, error) {
	file := "/root/" + name + ".yaml"
	if _, err := d.quiet(ctx, d.BootServers()[0], "sh", "-c", `printf %s "$1" > "$2"`, "sh", manifest, file); err != nil {
		return "", err
	}
	return d.Kubectl(ctx, "apply", "-f", file)
}

// KubernetesMachines are the node addresses of the machines the cluster
// template makes nodes: healthy compute servers.
func (d *DC) KubernetesMachines(ctx context.Context) ([]string, error) {
	ms, err := d.Machines(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.Spec.Role == menu.RoleWorker && m.Status.State == sabakan.StateHealthy && len(m.Spec.IPv4) > 0 {
			out = append(out, m.Spec.IPv4[0])
		}
	}
	slices.Sort(out)
	return out, nil
}
