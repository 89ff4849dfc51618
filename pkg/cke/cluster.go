package cke

import (
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// Cluster is cluster.yml: the Kubernetes cluster the engine maintains. The
// field names are the reference engine's, so existing files load unchanged
// (fields that only make sense for its container transport, like
// extra_binds, are refused with a clear error rather than ignored).
type Cluster struct {
	Name  string  `json:"name"`
	Nodes []*Node `json:"nodes"`
	// ServiceSubnet is the ClusterIP range (CIDR); its first address is the
	// kubernetes Service's.
	ServiceSubnet string `json:"service_subnet"`
	// DNSServers are the upstream resolvers of the cluster DNS.
	DNSServers []string `json:"dns_servers,omitempty"`
	// TaintControlPlane keeps ordinary pods off control-plane nodes.
	TaintControlPlane bool `json:"taint_control_plane,omitempty"`
	// PodNetwork, when it has subnets, is the routed pod network the
	// engine runs: podnet on every node, its custom resources and the
	// address pool "default" with these subnets.
	PodNetwork PodNetwork `json:"pod_network,omitempty"`
	Options    Options    `json:"options"`
}

// PodNetwork is the pod network's default address pool.
type PodNetwork struct {
	// Subnets are IPv4 CIDRs pods take addresses from. Subnets can be
	// added later but never removed or changed (addresses of running pods
	// come from them).
	Subnets []string `json:"subnets,omitempty"`
	// BlockSizeBits sizes the blocks handed to nodes: 2^bits addresses
	// (DefaultBlockSizeBits when nil). It cannot change once pods run.
	BlockSizeBits *int `json:"block_size_bits,omitempty"`
}

// DefaultBlockSizeBits makes blocks of 32 addresses (/27).
const DefaultBlockSizeBits = 5

// Enabled reports whether the engine runs the pod network.
func (p PodNetwork) Enabled() bool { return len(p.Subnets) > 0 }

// Bits returns the block size in bits.
func (p PodNetwork) Bits() int {
	if p.BlockSizeBits == nil {
		return DefaultBlockSizeBits
	}
	return *p.BlockSizeBits
}

// Node is one machine of the cluster.
type Node struct {
	// Address is the node's IPv4 address: SSH, the kubelet's node IP and,
	// on control planes, etcd and the API server listen on it.
	Address string `json:"address"`
	// Hostname is the Kubernetes node name; the address when empty.
	Hostname     string            `json:"hostname,omitempty"`
	User         string            `json:"user"`
	ControlPlane bool              `json:"control_plane,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Taints       []Taint           `json:"taints,omitempty"`
}

// Nodename is the node's name in Kubernetes.
func (n *Node) Nodename() string {
	if n.Hostname != "" {
		return n.Hostname
	}
	return n.Address
}

// Taint is a Kubernetes node taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// ServiceParams are an operator's additions to a component's command.
type ServiceParams struct {
	// ExtraArgs are appended to the command line ("--flag=value").
	ExtraArgs []string `json:"extra_args,omitempty"`
	// ExtraEnv are added to the unit's environment.
	ExtraEnv map[string]string `json:"extra_env,omitempty"`
}

// KubeletParams configure the kubelet.
type KubeletParams struct {
	ServiceParams
	// Config is merged over the engine's KubeletConfiguration (YAML/JSON
	// object with the kubelet's field names).
	Config map[string]any `json:"config,omitempty"`
}

// ProxyParams configure kube-proxy.
type ProxyParams struct {
	ServiceParams
	// Mode is the proxy mode; "iptables" by default.
	Mode string `json:"mode,omitempty"`
}

// Options are per-component parameters.
type Options struct {
	Etcd              ServiceParams `json:"etcd"`
	Rivers            ServiceParams `json:"rivers"`
	APIServer         ServiceParams `json:"kube-api"`
	ControllerManager ServiceParams `json:"kube-controller-manager"`
	Scheduler         ServiceParams `json:"kube-scheduler"`
	Proxy             ProxyParams   `json:"kube-proxy"`
	Kubelet           KubeletParams `json:"kubelet"`
	Podnet            ServiceParams `json:"podnet"`
}

// ParseCluster reads cluster.yml (YAML or JSON). Unknown fields are errors:
// a misspelt option would otherwise be silently ignored. The result is not
// validated; call Validate.
func ParseCluster(data []byte) (*Cluster, error) {
	var c Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%w: cluster.yml: %v", ErrInvalid, err)
	}
	return &c, nil
}

// ControlPlanes returns the control-plane nodes in declaration order.
func (c *Cluster) ControlPlanes() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// Workers returns the nodes that are not control planes.
func (c *Cluster) Workers() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if !n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node with address addr, or nil.
func (c *Cluster) Node(addr string) *Node {
	i := slices.IndexFunc(c.Nodes, func(n *Node) bool { return n.Address == addr })
	if i < 0 {
		return nil
	}
	return c.Nodes[i]
}

// Addresses returns the addresses of nodes.
func Addresses(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Address
	}
	return out
}
