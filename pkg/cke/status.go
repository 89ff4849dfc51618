package cke

import "time"

// NodeStatus is what the engine found on one node.
type NodeStatus struct {
	Reachable bool `json:"reachable"`
	// Error says why the node was not reachable.
	Error    string                    `json:"error,omitempty"`
	Services map[Service]ServiceStatus `json:"services,omitempty"`
	// EtcdData is true when the node holds a Kubernetes etcd data
	// directory: it has been a member.
	EtcdData bool `json:"etcd_data,omitempty"`
}

// ServiceStatus is one service on one node.
type ServiceStatus struct {
	Running bool `json:"running"`
	// Hash identifies the parameters (binary, flags, configuration) the
	// engine last started the unit with; "" when it never did.
	Hash string `json:"hash,omitempty"`
	// CertNotAfter is the earliest expiry of the certificates issued for
	// the service (zero when it has none).
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// EtcdStatus is the Kubernetes etcd cluster as the engine sees it.
type EtcdStatus struct {
	// Reachable: some member answered the member list.
	Reachable bool         `json:"reachable"`
	Members   []EtcdMember `json:"members,omitempty"`
}

// EtcdMember is one member of the Kubernetes etcd cluster.
type EtcdMember struct {
	ID uint64 `json:"id"`
	// Name is the node address the member was started on; "" while a
	// member has been added but has not started yet.
	Name    string `json:"name,omitempty"`
	PeerURL string `json:"peer_url"`
	// Address is the node address of PeerURL.
	Address string `json:"address"`
	// Learner: added as a non-voting member that has not been promoted.
	Learner bool `json:"learner,omitempty"`
	Healthy bool `json:"healthy"`
}

// Voting reports whether the member counts for the quorum.
func (m EtcdMember) Voting() bool { return !m.Learner }

// Voters returns how many members vote and how many of them are healthy.
func (e EtcdStatus) Voters() (voters, healthy int) {
	for _, m := range e.Members {
		if m.Voting() {
			voters++
			if m.Healthy {
				healthy++
			}
		}
	}
	return voters, healthy
}

// Healthy reports whether a majority of voting members is healthy.
func (e EtcdStatus) Healthy() bool {
	voters, healthy := e.Voters()
	return e.Reachable && voters > 0 && healthy > voters/2
}

// Member returns the member on addr, or nil.
func (e EtcdStatus) Member(addr string) *EtcdMember {
	for i := range e.Members {
		if e.Members[i].Address == addr {
			return &e.Members[i]
		}
	}
	return nil
}

// KubeStatus is the Kubernetes cluster as the engine sees it.
type KubeStatus struct {
	// Reachable: an API server answered.
	Reachable bool       `json:"reachable"`
	Nodes     []KubeNode `json:"nodes,omitempty"`
	// Endpoints are the addresses in the default/kubernetes Endpoints.
	Endpoints []string `json:"endpoints,omitempty"`
	// Resources are the hashes the engine's resources (RBAC, cluster DNS,
	// users' resources) were last applied with, by resource key.
	Resources map[string]string `json:"resources,omitempty"`
}

// KubeNode is a Node object.
type KubeNode struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Taints      []Taint           `json:"taints,omitempty"`
	Ready       bool              `json:"ready"`
}
