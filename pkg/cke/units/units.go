// Package units renders what each service of a node should be: its
// command line, environment, configuration files and the certificates it
// needs, all as a pure function of cluster.yml and the artifacts of this
// release. The hash of a rendered unit is what the engine compares with
// the hash a node recorded when the unit was last started, so a change
// of cluster.yml restarts exactly the services it changes. Certificates
// are described (CA, names) but issued when a unit starts, so that their
// renewal is not a change of parameters.
package units

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/openneco/neco/pkg/cke"
)

// Paths on the nodes.
const (
	BinDir   = "/opt/cke/bin"
	ConfDir  = "/etc/cke"
	StateDir = "/etc/cke/state"
	// EtcdDataDir holds the Kubernetes etcd's data on control planes.
	EtcdDataDir = "/var/lib/cke/etcd"
	UnitDir     = "/etc/systemd/system"
)

// Ports.
const (
	APIServerPort  = 6443
	RiversPort     = 16443
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// Binary is an executable the engine copies to nodes.
type Binary struct {
	// Name is its name with version, e.g. "kube-v1.37.2".
	Name string `json:"name"`
	// SHA256 is the hex digest of its content.
	SHA256 string `json:"sha256"`
	// Source is where the engine reads it (not part of the hash).
	Source string `json:"-"`
}

// NodePath is where the binary lives on nodes: the digest in the name
// makes a rebuilt binary a new file, never an overwrite of a running one.
func (b Binary) NodePath() string {
	d := b.SHA256
	if len(d) > 12 {
		d = d[:12]
	}
	return path.Join(BinDir, b.Name+"-"+d)
}

// Artifacts are what this release runs.
type Artifacts struct {
	Kube Binary `json:"kube"`
	Etcd Binary `json:"etcd"`
	// PauseImage is the pod sandbox image.
	PauseImage string `json:"pause_image"`
	// HAProxy is the node's own HAProxy (the rivers load balancer).
	HAProxy string `json:"haproxy"`
	// Podnet is the pod network's program (node daemon and CNI plugin).
	Podnet Binary `json:"podnet"`
}

// Supports reports whether these artifacts can run c: a pod network
// needs the podnet program.
func (a Artifacts) Supports(c *cke.Cluster) error {
	if c.PodNetwork.Enabled() && a.Podnet.SHA256 == "" {
		return fmt.Errorf("%w: pod_network: this engine has no podnet program (cke -podnet-binary)", cke.ErrInvalid)
	}
	return nil
}

// CertSpec is a certificate a unit needs; the engine issues it from
// Vault when the unit starts and writes File.crt and File.key.
type CertSpec struct {
	File string `json:"file"`
	// CA is the Vault PKI mount (ckevault's names).
	CA string `json:"ca"`
	// Role is the ckevault role.
	Role       string   `json:"role"`
	CommonName string   `json:"cn"`
	IPSANs     []string `json:"ip_sans,omitempty"`
	DNSSANs    []string `json:"dns_sans,omitempty"`
	// Bundle writes certificate and key into one file, File.pem (HAProxy
	// reads them so), instead of File.crt and File.key.
	Bundle bool `json:"bundle,omitempty"`
}

// File is a file a unit reads.
type File struct {
	Path string `json:"path"`
	// Content is literal content; empty when Secret or CA names it.
	Content string `json:"content,omitempty"`
	// CA names a Vault CA whose certificate the file holds.
	CA string `json:"ca,omitempty"`
	// Secret names an engine secret the file holds (Secret* constants).
	Secret string `json:"secret,omitempty"`
	Mode   uint32 `json:"mode"`
}

// Engine secrets (from Vault) that files may hold.
const (
	SecretEncryptionConfig  = "encryption-config"
	SecretServiceAccountKey = "service-account-key"
	SecretServiceAccountPub = "service-account-pub"
)

// Unit is one service on one node as it should be.
type Unit struct {
	Service cke.Service `json:"service"`
	// Binary is copied to the node before the unit starts (nil: the
	// node's own program).
	Binary  *Binary           `json:"binary,omitempty"`
	Command []string          `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	Files   []File            `json:"files,omitempty"`
	Certs   []CertSpec        `json:"certs,omitempty"`
	// Secrets fingerprints the secrets the files hold (a new encryption
	// key restarts the API servers).
	Secrets string `json:"secrets,omitempty"`
	// StartEnv is read at start but not hashed: etcd's initial cluster,
	// which changes with every member added yet matters only the first
	// time a member starts.
	StartEnv map[string]string `json:"-"`
	// After are units this one starts after.
	After []string `json:"after,omitempty"`
}

// Hash identifies the unit's parameters.
func (u *Unit) Hash() string {
	data, err := json.Marshal(u)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Dir is the unit's directory of files on the node.
func Dir(s cke.Service) string { return path.Join(ConfDir, string(s)) }

// StateFile is where a node records the hash a unit was started with.
func StateFile(s cke.Service) string { return path.Join(StateDir, string(s)+".json") }

// Inputs are what rendering depends on besides cluster.yml.
type Inputs struct {
	Artifacts Artifacts
	// SecretsFingerprint changes when the engine's secrets change.
	SecretsFingerprint string
}

// Render returns every unit node n of c should run, by service.
func Render(c *cke.Cluster, n *cke.Node, in Inputs) map[cke.Service]*Unit {
	r := renderer{c: c, n: n, in: in}
	out := map[cke.Service]*Unit{
		cke.Rivers:     r.rivers(),
		cke.Containerd: r.containerd(),
		cke.Kubelet:    r.kubelet(),
		cke.Proxy:      r.proxy(),
	}
	if c.PodNetwork.Enabled() {
		out[cke.Podnet] = r.podnet()
	}
	if n.ControlPlane {
		out[cke.Etcd] = r.etcd()
		out[cke.APIServer] = r.apiserver()
		out[cke.ControllerManager] = r.controllerManager()
		out[cke.Scheduler] = r.scheduler()
	}
	return out
}

// Hashes renders every node and returns the hashes DecideOps compares.
func Hashes(c *cke.Cluster, in Inputs) map[string]map[cke.Service]string {
	out := map[string]map[cke.Service]string{}
	for _, n := range c.Nodes {
		out[n.Address] = map[cke.Service]string{}
		for s, u := range Render(c, n, in) {
			out[n.Address][s] = u.Hash()
		}
	}
	return out
}

type renderer struct {
	c  *cke.Cluster
	n  *cke.Node
	in Inputs
}

func (r renderer) file(s cke.Service, name, content string) File {
	return File{Path: path.Join(Dir(s), name), Content: content, Mode: 0o644}
}

func caFile(s cke.Service, name, ca string) File {
	return File{Path: path.Join(Dir(s), name), CA: ca, Mode: 0o644}
}

// flag joins --name=value.
func flag(name, value string) string { return "--" + name + "=" + value }

// withExtra appends the operator's extra_args; a flag given there
// replaces the engine's flag of the same name.
func withExtra(cmd []string, p cke.ServiceParams) []string {
	for _, extra := range p.ExtraArgs {
		name, _, _ := strings.Cut(extra, "=")
		cmd = slices.DeleteFunc(cmd, func(a string) bool {
			n, _, _ := strings.Cut(a, "=")
			return strings.HasPrefix(a, "--") && n == name
		})
		cmd = append(cmd, extra)
	}
	return cmd
}

// ServiceIP returns the n-th address of the service subnet (1: the
// kubernetes Service, 10: the cluster DNS).
func ServiceIP(c *cke.Cluster, n int) string {
	p, err := netip.ParsePrefix(c.ServiceSubnet)
	if err != nil {
		return ""
	}
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a.String()
}

func (r renderer) controlPlaneAddrs() []string {
	return cke.Addresses(r.c.ControlPlanes())
}

func urls(scheme string, addrs []string, port int) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = fmt.Sprintf("%s://%s:%d", scheme, a, port)
	}
	return strings.Join(out, ",")
}

// sortedEnv is a stable rendering of an environment.
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
