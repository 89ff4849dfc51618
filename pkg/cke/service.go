package cke

// Service is a component the engine runs on nodes as a systemd unit.
type Service string

// The services, in the order a node's services start.
const (
	// Rivers is the node-local load balancer in front of every API server
	// (127.0.0.1:16443); kubelet and kube-proxy reach the API through it.
	Rivers            Service = "rivers"
	Etcd              Service = "etcd"
	APIServer         Service = "kube-apiserver"
	ControllerManager Service = "kube-controller-manager"
	Scheduler         Service = "kube-scheduler"
	// Containerd is the node's own containerd; the engine owns its
	// configuration and restarts it when that changes.
	Containerd Service = "containerd"
	// Podnet is the pod network's node daemon (cluster.yml pod_network):
	// pod addresses, their routes and the CNI configuration.
	Podnet  Service = "podnet"
	Kubelet Service = "kubelet"
	Proxy   Service = "kube-proxy"
)

// ControlPlaneServices run on control planes besides etcd.
var ControlPlaneServices = []Service{APIServer, ControllerManager, Scheduler}

// NodeServices run on every node besides Rivers.
// Podnet runs only when cluster.yml has a pod network.
var NodeServices = []Service{Containerd, Podnet, Kubelet, Proxy}

// AllServices are every service the engine may run, in start order.
var AllServices = []Service{Rivers, Etcd, APIServer, ControllerManager, Scheduler, Containerd, Podnet, Kubelet, Proxy}

// Unit is the systemd unit running s.
func (s Service) Unit() string {
	if s == Containerd {
		return "containerd.service"
	}
	return "cke-" + string(s) + ".service"
}

// Engine-owned metadata on Kubernetes nodes.
const (
	// LabelPrefix marks labels and annotations the engine sets itself.
	LabelPrefix = "cke.openneco.io/"
	// AnnotationManaged lists, on each node, the label, annotation and
	// taint keys the engine set from cluster.yml, so that a key removed
	// from cluster.yml is removed from the node (and a key someone else
	// set is left alone).
	AnnotationManaged = LabelPrefix + "managed"
	// LabelControlPlane is Kubernetes' well-known control-plane role.
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
)
