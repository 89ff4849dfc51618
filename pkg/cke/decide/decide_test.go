package decide

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// converged returns the snapshot of a cluster with cps control planes and
// workers workers (addresses 10.0.0.1… control planes first) where
// everything runs as wanted: DecideOps has nothing to do.
func converged(cps, workers int) *Snapshot {
	c := &cke.Cluster{Name: "test", ServiceSubnet: "10.68.0.0/16"}
	for i := range cps + workers {
		c.Nodes = append(c.Nodes, &cke.Node{Address: fmt.Sprintf("10.0.0.%d", i+1), User: "cke", ControlPlane: i < cps})
	}
	s := &Snapshot{
		Cluster: c, Nodes: map[string]*cke.NodeStatus{}, Want: map[string]map[cke.Service]string{},
		WantResources: map[string]string{"rbac": "r1", "dns": "d1"},
		Etcd:          cke.EtcdStatus{Reachable: true},
		Kube:          cke.KubeStatus{Reachable: true, Resources: map[string]string{"rbac": "r1", "dns": "d1"}},
		Now:           now, RenewBefore: 24 * time.Hour,
	}
	for i, n := range c.Nodes {
		svcs := append([]cke.Service{cke.Rivers}, cke.NodeServices...)
		if n.ControlPlane {
			svcs = append(svcs, cke.Etcd)
			svcs = append(svcs, cke.ControlPlaneServices...)
			s.Etcd.Members = append(s.Etcd.Members, cke.EtcdMember{ID: uint64(i + 1), Name: n.Address,
				PeerURL: "https://" + n.Address + ":2380", Address: n.Address, Healthy: true})
			s.Kube.Endpoints = append(s.Kube.Endpoints, n.Address)
		}
		st := &cke.NodeStatus{Reachable: true, Services: map[cke.Service]cke.ServiceStatus{}, EtcdData: n.ControlPlane}
		s.Want[n.Address] = map[cke.Service]string{}
		for _, svc := range svcs {
			st.Services[svc] = cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(7 * 24 * time.Hour)}
			s.Want[n.Address][svc] = "h1"
		}
		s.Nodes[n.Address] = st
		labels, annotations, taints := NodeMetadata(c, n)
		labels["kubernetes.io/hostname"] = n.Nodename() // the kubelet's own
		s.Kube.Nodes = append(s.Kube.Nodes, cke.KubeNode{Name: n.Nodename(), Labels: labels, Annotations: annotations, Taints: taints, Ready: true})
	}
	return s
}

// empty is a new cluster: nodes reachable, nothing running, no etcd, no API.
func empty(cps, workers int) *Snapshot {
	s := converged(cps, workers)
	for _, st := range s.Nodes {
		st.Services = map[cke.Service]cke.ServiceStatus{}
		st.EtcdData = false
	}
	s.Etcd = cke.EtcdStatus{}
	s.Kube = cke.KubeStatus{}
	return s
}

func (s *Snapshot) set(addr string, svc cke.Service, st cke.ServiceStatus) *Snapshot {
	s.Nodes[addr].Services[svc] = st
	return s
}

func (s *Snapshot) runAll(svc cke.Service, nodes ...string) *Snapshot {
	for _, a := range nodes {
		s.set(a, svc, cke.ServiceStatus{Running: true, Hash: "h1"})
	}
	return s
}

func (s *Snapshot) down(addr string) *Snapshot {
	s.Nodes[addr] = &cke.NodeStatus{Error: "dial tcp: i/o timeout"}
	return s
}

func (s *Snapshot) want(svc cke.Service, hash string, nodes ...string) *Snapshot {
	for _, a := range nodes {
		s.Want[a][svc] = hash
	}
	return s
}

// unwant makes svc a service no node should run (cluster.yml without it).
func (s *Snapshot) unwant(svc cke.Service) *Snapshot {
	for _, w := range s.Want {
		delete(w, svc)
	}
	return s
}

// promote makes addr a control plane whose components run but which is no
// etcd member yet.
func (s *Snapshot) promote(addr string) *Snapshot {
	s.Cluster.Node(addr).ControlPlane = true
	for _, svc := range cke.ControlPlaneServices {
		s.want(svc, "h1", addr).runAll(svc, addr)
	}
	s.want(cke.Etcd, "h1", addr)
	return s
}

func (s *Snapshot) member(addr string) *cke.EtcdMember { return s.Etcd.Member(addr) }

func all(s *Snapshot) []string     { return cke.Addresses(s.Cluster.Nodes) }
func cpAddrs(s *Snapshot) []string { return cke.Addresses(s.Cluster.ControlPlanes()) }

// bootstrapped: rivers everywhere, etcd of every control plane healthy.
func bootstrapped(cps, workers int) *Snapshot {
	s := empty(cps, workers)
	s.runAll(cke.Rivers, all(s)...)
	s.runAll(cke.Etcd, cpAddrs(s)...)
	for i, a := range cpAddrs(s) {
		s.Nodes[a].EtcdData = true
		s.Etcd.Members = append(s.Etcd.Members, cke.EtcdMember{ID: uint64(i + 1), Name: a, Address: a, Healthy: true})
	}
	s.Etcd.Reachable = true
	return s
}

func TestDecideOps(t *testing.T) {
	tests := []struct {
		name    string
		snap    *Snapshot
		phase   Phase
		ops     []string // Op.String() without the reason
		waiting string   // a part of Result.Waiting
	}{
		{name: "converged", snap: converged(3, 2), phase: PhaseCompleted},

		// Rivers first: everything else reaches the API through it.
		{name: "fresh cluster starts rivers everywhere", snap: empty(1, 2), phase: PhaseRivers,
			ops: []string{"start-service rivers on 10.0.0.1,10.0.0.2,10.0.0.3"}},
		{name: "rivers on a reachable node only", snap: empty(1, 2).down("10.0.0.3"), phase: PhaseRivers,
			ops: []string{"start-service rivers on 10.0.0.1,10.0.0.2"}},
		{name: "rivers restarted everywhere when the control planes change",
			snap: converged(3, 1).want(cke.Rivers, "h2", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"), phase: PhaseRivers,
			ops: []string{"start-service rivers on 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4"}},

		// etcd bootstrap.
		{name: "bootstrap etcd on every control plane", snap: empty(3, 1).runAll(cke.Rivers, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"),
			phase: PhaseEtcdBootstrap, ops: []string{"etcd-bootstrap on 10.0.0.1,10.0.0.2,10.0.0.3"}},
		{name: "bootstrap waits for an unreachable control plane",
			snap:  empty(3, 0).runAll(cke.Rivers, "10.0.0.1", "10.0.0.2").down("10.0.0.3"),
			phase: PhaseEtcdBootstrap, waiting: "unreachable: 10.0.0.3"},
		{name: "an interrupted bootstrap resumes on the others", snap: func() *Snapshot {
			s := empty(3, 0).runAll(cke.Rivers, "10.0.0.1", "10.0.0.2", "10.0.0.3").runAll(cke.Etcd, "10.0.0.1")
			s.Nodes["10.0.0.1"].EtcdData = true
			return s
		}(), phase: PhaseEtcdBootstrap, ops: []string{"etcd-bootstrap on 10.0.0.2,10.0.0.3"}},
		{name: "no resume when a majority has data: etcd-start instead", snap: func() *Snapshot {
			s := empty(3, 0).runAll(cke.Rivers, "10.0.0.1", "10.0.0.2", "10.0.0.3")
			s.Nodes["10.0.0.1"].EtcdData = true
			s.Nodes["10.0.0.2"].EtcdData = true
			return s
		}(), phase: PhaseEtcdStart, ops: []string{"start-service etcd on 10.0.0.1,10.0.0.2"}},
		{name: "no resume while the cluster answers", snap: func() *Snapshot {
			s := bootstrapped(3, 0)
			s.Nodes["10.0.0.2"].EtcdData, s.Nodes["10.0.0.3"].EtcdData = false, false
			return s
		}(), phase: PhaseK8sStart},

		// etcd start and wait.
		{name: "restart stopped etcd that has data", snap: bootstrapped(3, 0).set("10.0.0.2", cke.Etcd, cke.ServiceStatus{Hash: "h1"}),
			phase: PhaseEtcdStart, ops: []string{"start-service etcd on 10.0.0.2"}},
		{name: "a removed member's data is not started", snap: func() *Snapshot {
			s := bootstrapped(3, 0).set("10.0.0.2", cke.Etcd, cke.ServiceStatus{Hash: "h1"})
			s.Etcd.Members = slices.DeleteFunc(s.Etcd.Members, func(m cke.EtcdMember) bool { return m.Address == "10.0.0.2" })
			return s
		}(), phase: PhaseK8sStart},
		{name: "wait for an etcd quorum", snap: func() *Snapshot {
			s := bootstrapped(3, 0)
			s.member("10.0.0.1").Healthy, s.member("10.0.0.2").Healthy = false, false
			return s
		}(), phase: PhaseEtcdWait, ops: []string{"etcd-wait"}},
		{name: "wait while no member answers", snap: func() *Snapshot {
			s := bootstrapped(1, 0)
			s.Etcd = cke.EtcdStatus{}
			return s
		}(), phase: PhaseEtcdWait, ops: []string{"etcd-wait"}},
		{name: "one unhealthy member of three is no reason to wait", snap: func() *Snapshot {
			s := converged(3, 0)
			s.member("10.0.0.3").Healthy = false
			return s
		}(), phase: PhaseCompleted},

		// Kubernetes components.
		{name: "start Kubernetes once etcd is up", snap: bootstrapped(1, 2), phase: PhaseK8sStart, ops: []string{
			"start-service kube-apiserver on 10.0.0.1",
			"start-service kube-controller-manager on 10.0.0.1",
			"start-service kube-scheduler on 10.0.0.1",
			"start-service containerd on 10.0.0.1,10.0.0.2,10.0.0.3",
			"start-service podnet on 10.0.0.1,10.0.0.2,10.0.0.3",
			"start-service kubelet on 10.0.0.1,10.0.0.2,10.0.0.3",
			"start-service kube-proxy on 10.0.0.1,10.0.0.2,10.0.0.3",
		}},
		{name: "every stopped API server starts at once", snap: converged(3, 0).
			set("10.0.0.1", cke.APIServer, cke.ServiceStatus{}).set("10.0.0.3", cke.APIServer, cke.ServiceStatus{}),
			phase: PhaseK8sStart, ops: []string{"start-service kube-apiserver on 10.0.0.1,10.0.0.3"}},
		{name: "outdated API servers restart one at a time", snap: converged(3, 0).want(cke.APIServer, "h2", "10.0.0.1", "10.0.0.2", "10.0.0.3"),
			phase: PhaseK8sStart, ops: []string{"start-service kube-apiserver on 10.0.0.1"}},
		{name: "a stopped API server goes before an outdated one", snap: converged(3, 0).want(cke.APIServer, "h2", "10.0.0.1").
			set("10.0.0.2", cke.APIServer, cke.ServiceStatus{}),
			phase: PhaseK8sStart, ops: []string{"start-service kube-apiserver on 10.0.0.2"}},
		{name: "the last outdated API server", snap: converged(3, 0).want(cke.APIServer, "h2", "10.0.0.3"),
			phase: PhaseK8sStart, ops: []string{"start-service kube-apiserver on 10.0.0.3"}},
		{name: "certificate renewal restarts the component", snap: converged(1, 1).
			set("10.0.0.2", cke.Kubelet, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(time.Hour)}),
			phase: PhaseK8sStart, ops: []string{"start-service kubelet on 10.0.0.2"}},
		{name: "outdated components on every node restart together", snap: converged(1, 2).want(cke.Proxy, "h2", "10.0.0.1", "10.0.0.2", "10.0.0.3").
			want(cke.Kubelet, "h2", "10.0.0.3"),
			phase: PhaseK8sStart, ops: []string{"start-service kubelet on 10.0.0.3", "start-service kube-proxy on 10.0.0.1,10.0.0.2,10.0.0.3"}},
		{name: "an unreachable node is left alone", snap: converged(1, 2).want(cke.Kubelet, "h2", "10.0.0.2").down("10.0.0.2"),
			phase: PhaseCompleted},

		// etcd membership.
		{name: "a promoted worker first becomes an etcd member", snap: func() *Snapshot {
			s := converged(1, 2)
			s.Cluster.Nodes[1].ControlPlane = true
			return s.want(cke.APIServer, "h1", "10.0.0.2").want(cke.ControllerManager, "h1", "10.0.0.2").
				want(cke.Scheduler, "h1", "10.0.0.2").want(cke.Etcd, "h1", "10.0.0.2")
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-add-member on 10.0.0.2"}},
		{name: "then runs the control-plane components", snap: func() *Snapshot {
			s := converged(1, 2).promote("10.0.0.2")
			for _, svc := range cke.ControlPlaneServices {
				s.Nodes["10.0.0.2"].Services[svc] = cke.ServiceStatus{}
			}
			s.Etcd.Members = append(s.Etcd.Members, cke.EtcdMember{ID: 9, Name: "10.0.0.2", Address: "10.0.0.2", Healthy: true})
			return s
		}(), phase: PhaseK8sStart, ops: []string{"start-service kube-apiserver on 10.0.0.2",
			"start-service kube-controller-manager on 10.0.0.2", "start-service kube-scheduler on 10.0.0.2"}},
		{name: "moving the only control plane starts with its etcd", snap: func() *Snapshot {
			s := converged(1, 2)
			s.Cluster.Nodes[0].ControlPlane = false
			s.Cluster.Nodes[1].ControlPlane = true
			return s.want(cke.APIServer, "h1", "10.0.0.2").want(cke.ControllerManager, "h1", "10.0.0.2").
				want(cke.Scheduler, "h1", "10.0.0.2").want(cke.Etcd, "h1", "10.0.0.2")
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-add-member on 10.0.0.2"}},
		{name: "an addition interrupted before etcd started is resumed", snap: func() *Snapshot {
			s := converged(2, 0)
			*s.member("10.0.0.2") = cke.EtcdMember{ID: 2, Address: "10.0.0.2", Learner: true}
			s.Nodes["10.0.0.2"].Services[cke.Etcd] = cke.ServiceStatus{}
			s.Nodes["10.0.0.2"].EtcdData = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-add-member on 10.0.0.2"}},
		{name: "an addition interrupted before promotion is resumed", snap: func() *Snapshot {
			s := converged(2, 0)
			s.member("10.0.0.2").Learner = true
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-add-member on 10.0.0.2"}},
		{name: "a learner does not count for the quorum", snap: func() *Snapshot {
			s := converged(3, 0)
			s.member("10.0.0.3").Learner = true
			s.member("10.0.0.1").Healthy = false
			return s
		}(), phase: PhaseEtcdWait, ops: []string{"etcd-wait"}},
		{name: "adding waits for an unreachable control plane", snap: func() *Snapshot {
			s := converged(3, 1).promote("10.0.0.4")
			s.down("10.0.0.2")
			return s
		}(), phase: PhaseEtcdMaintain, waiting: "unreachable: 10.0.0.2"},
		{name: "adding waits until every member is healthy", snap: func() *Snapshot {
			s := converged(3, 1).promote("10.0.0.4")
			s.member("10.0.0.1").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, waiting: "every member is healthy (2 of 3)"},
		{name: "a demoted control plane's member is removed first", snap: func() *Snapshot {
			s := converged(3, 1)
			s.Cluster.Nodes[0].ControlPlane = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-remove-member member 1 on 10.0.0.1"}},
		{name: "unhealthy stale members go before healthy ones", snap: func() *Snapshot {
			s := converged(3, 0)
			s.Cluster.Nodes = s.Cluster.Nodes[:1]
			s.Former = []string{"10.0.0.2", "10.0.0.3"}
			s.member("10.0.0.3").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-remove-member member 3 on 10.0.0.3"}},
		{name: "a removal that would lose the quorum waits", snap: func() *Snapshot {
			s := converged(3, 0)
			s.Cluster.Nodes = s.Cluster.Nodes[:2]
			s.Former = []string{"10.0.0.3"}
			s.member("10.0.0.1").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, waiting: "would leave 1 healthy of 2"},
		{name: "a replaced control plane: remove the dead member, then add the new one", snap: func() *Snapshot {
			s := converged(3, 1)
			s.Cluster.Nodes[2].ControlPlane = false // 10.0.0.3 died and was demoted
			s.promote("10.0.0.4").down("10.0.0.3")
			s.member("10.0.0.3").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-remove-member member 3 on 10.0.0.3"}},
		{name: "a former member's data is wiped", snap: func() *Snapshot {
			s := converged(2, 1)
			s.Cluster.Nodes[1].ControlPlane = false
			s.Etcd.Members = s.Etcd.Members[:1]
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"etcd-destroy on 10.0.0.2"}},
		{name: "outdated etcd restarts one member at a time", snap: converged(3, 0).want(cke.Etcd, "h2", "10.0.0.1", "10.0.0.2", "10.0.0.3"),
			phase: PhaseEtcdMaintain, ops: []string{"start-service etcd on 10.0.0.1"}},
		{name: "no restart of a healthy member that would lose the majority", snap: func() *Snapshot {
			s := converged(3, 0).want(cke.Etcd, "h2", "10.0.0.1")
			s.member("10.0.0.3").Healthy = false
			return s
		}(), phase: PhaseCompleted},
		{name: "an unhealthy outdated member is restarted first", snap: func() *Snapshot {
			s := converged(3, 0).want(cke.Etcd, "h2", "10.0.0.1", "10.0.0.3")
			s.member("10.0.0.3").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"start-service etcd on 10.0.0.3"}},
		{name: "a member whose certificate expired is restarted", snap: func() *Snapshot {
			s := converged(3, 0).set("10.0.0.2", cke.Etcd, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(-time.Hour)})
			s.member("10.0.0.2").Healthy = false
			return s
		}(), phase: PhaseEtcdMaintain, ops: []string{"start-service etcd on 10.0.0.2"}},
		{name: "every certificate expired and no quorum: restart them all", snap: func() *Snapshot {
			s := converged(3, 0)
			for _, a := range cpAddrs(s) {
				s.set(a, cke.Etcd, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(-time.Hour)})
				s.member(a).Healthy = false
			}
			return s
		}(), phase: PhaseEtcdWait, ops: []string{"start-service etcd on 10.0.0.1,10.0.0.2,10.0.0.3"}},
		{name: "etcd restart for an expiring certificate", snap: converged(1, 0).
			set("10.0.0.1", cke.Etcd, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(time.Minute)}),
			phase: PhaseEtcdMaintain, ops: []string{"start-service etcd on 10.0.0.1"}},

		// Objects in Kubernetes.
		{name: "no API server answers", snap: func() *Snapshot { s := converged(1, 0); s.Kube = cke.KubeStatus{}; return s }(),
			phase: PhaseK8sMaintain, waiting: "no API server answers"},
		{name: "resources applied and endpoints set on a new cluster", snap: func() *Snapshot {
			s := converged(1, 1)
			s.Kube.Resources, s.Kube.Endpoints = nil, nil
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"apply-resources [dns,rbac]", "update-endpoints on 10.0.0.1"}},
		{name: "a changed resource is applied again", snap: converged(1, 0).withResource("dns", "d2"),
			phase: PhaseK8sMaintain, ops: []string{"apply-resources [dns]"}},
		{name: "endpoints leave out a stopped API server", snap: func() *Snapshot {
			s := converged(3, 0)
			s.Nodes["10.0.0.2"].Services[cke.APIServer] = cke.ServiceStatus{Running: true, Hash: "h1"}
			s.down("10.0.0.3")
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"update-endpoints on 10.0.0.1,10.0.0.2"}},
		{name: "endpoints in another order are the same", snap: func() *Snapshot {
			s := converged(3, 0)
			slices.Reverse(s.Kube.Endpoints)
			return s
		}(), phase: PhaseCompleted},
		{name: "a label added in cluster.yml", snap: func() *Snapshot {
			s := converged(1, 1)
			s.Cluster.Nodes[1].Labels = map[string]string{"topology.kubernetes.io/zone": "rack1"}
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"update-nodes [10.0.0.2]"}},
		{name: "taint_control_plane turned on", snap: func() *Snapshot {
			s := converged(1, 1)
			s.Cluster.TaintControlPlane = true
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"update-nodes [10.0.0.1]"}},
		{name: "a node left cluster.yml", snap: func() *Snapshot {
			s := converged(1, 2)
			s.Cluster.Nodes = s.Cluster.Nodes[:2]
			s.Former = []string{"10.0.0.3"}
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"remove-nodes [10.0.0.3]"}},

		// Precedence and corner cases.
		{name: "rivers go before a stopped etcd", snap: converged(3, 1).set("10.0.0.4", cke.Rivers, cke.ServiceStatus{}).
			set("10.0.0.2", cke.Etcd, cke.ServiceStatus{Hash: "h1"}),
			phase: PhaseRivers, ops: []string{"start-service rivers on 10.0.0.4"}},
		{name: "a stopped etcd goes before Kubernetes components", snap: converged(3, 1).set("10.0.0.2", cke.Etcd, cke.ServiceStatus{Hash: "h1"}).
			set("10.0.0.4", cke.Kubelet, cke.ServiceStatus{}),
			phase: PhaseEtcdStart, ops: []string{"start-service etcd on 10.0.0.2"}},
		{name: "nothing is bootstrapped while a former member holds data", snap: func() *Snapshot {
			s := empty(1, 1).runAll(cke.Rivers, "10.0.0.1", "10.0.0.2")
			s.Former = []string{"10.0.0.9"}
			s.Nodes["10.0.0.9"] = &cke.NodeStatus{Reachable: true, EtcdData: true, Services: map[cke.Service]cke.ServiceStatus{}}
			return s
		}(), phase: PhaseEtcdWait, ops: []string{"etcd-wait"}},
		{name: "an unreachable worker does not hold back the control plane", snap: bootstrapped(1, 2).down("10.0.0.3"),
			phase: PhaseK8sStart, ops: []string{
				"start-service kube-apiserver on 10.0.0.1", "start-service kube-controller-manager on 10.0.0.1",
				"start-service kube-scheduler on 10.0.0.1", "start-service containerd on 10.0.0.1,10.0.0.2",
				"start-service podnet on 10.0.0.1,10.0.0.2",
				"start-service kubelet on 10.0.0.1,10.0.0.2", "start-service kube-proxy on 10.0.0.1,10.0.0.2"}},
		{name: "no pod network: podnet is not started", snap: bootstrapped(1, 1).unwant(cke.Podnet),
			phase: PhaseK8sStart, ops: []string{
				"start-service kube-apiserver on 10.0.0.1", "start-service kube-controller-manager on 10.0.0.1",
				"start-service kube-scheduler on 10.0.0.1", "start-service containerd on 10.0.0.1,10.0.0.2",
				"start-service kubelet on 10.0.0.1,10.0.0.2", "start-service kube-proxy on 10.0.0.1,10.0.0.2"}},
		{name: "a pod network removed from cluster.yml stops podnet", snap: converged(1, 1).unwant(cke.Podnet),
			phase: PhaseStopCP, ops: []string{"stop-service podnet on 10.0.0.1,10.0.0.2"}},
		{name: "an outdated API server on an unreachable control plane waits for it", snap: converged(3, 0).
			want(cke.APIServer, "h2", "10.0.0.1").down("10.0.0.1"),
			phase: PhaseK8sMaintain, ops: []string{"update-endpoints on 10.0.0.2,10.0.0.3"}},
		{name: "a certificate far from expiry is left alone", snap: converged(1, 0).
			set("10.0.0.1", cke.APIServer, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(25 * time.Hour)}),
			phase: PhaseCompleted},
		{name: "rivers' certificate is renewed too", snap: converged(1, 1).
			set("10.0.0.2", cke.Rivers, cke.ServiceStatus{Running: true, Hash: "h1", CertNotAfter: now.Add(time.Hour)}),
			phase: PhaseRivers, ops: []string{"start-service rivers on 10.0.0.2"}},
		{name: "a taint removed from cluster.yml", snap: func() *Snapshot {
			s := converged(1, 1)
			n := s.Cluster.Nodes[1]
			n.Taints = []cke.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}
			k := &s.Kube.Nodes[1]
			k.Labels, k.Annotations, k.Taints = NodeMetadata(s.Cluster, n)
			n.Taints = nil
			return s
		}(), phase: PhaseK8sMaintain, ops: []string{"update-nodes [10.0.0.2]"}},
		{name: "the kubelet's own labels and another's taint are no difference", snap: func() *Snapshot {
			s := converged(1, 1)
			s.Kube.Nodes[1].Labels["beta.kubernetes.io/os"] = "linux"
			s.Kube.Nodes[1].Taints = append(s.Kube.Nodes[1].Taints, cke.Taint{Key: "node.kubernetes.io/unreachable", Effect: "NoExecute"})
			return s
		}(), phase: PhaseCompleted},
		{name: "a node not registered yet is no reason to update", snap: func() *Snapshot {
			s := converged(1, 1)
			s.Kube.Nodes = s.Kube.Nodes[:1]
			return s
		}(), phase: PhaseCompleted},
		{name: "a resource removed from the wanted set is not applied", snap: func() *Snapshot {
			s := converged(1, 0)
			delete(s.WantResources, "dns")
			return s
		}(), phase: PhaseCompleted},
		{name: "an unreachable former node is forgotten all the same", snap: func() *Snapshot {
			s := converged(1, 2)
			s.Cluster.Nodes = s.Cluster.Nodes[:2]
			s.Kube.Nodes = s.Kube.Nodes[:2]
			s.Former = []string{"10.0.0.3"}
			return s.down("10.0.0.3")
		}(), phase: PhaseForget, ops: []string{"forget-nodes on 10.0.0.3"}},

		// Clean-up.
		{name: "a demoted node's control-plane components stop", snap: func() *Snapshot {
			s := converged(2, 0)
			s.Cluster.Nodes[1].ControlPlane = false
			s.Etcd.Members = s.Etcd.Members[:1]
			s.Nodes["10.0.0.2"].EtcdData = false
			delete(s.Nodes["10.0.0.2"].Services, cke.Etcd)
			s.Kube.Endpoints = s.Kube.Endpoints[:1]
			s.Kube.Nodes[1].Labels, s.Kube.Nodes[1].Annotations, s.Kube.Nodes[1].Taints = NodeMetadata(s.Cluster, s.Cluster.Nodes[1])
			return s
		}(), phase: PhaseStopCP, ops: []string{
			"stop-service kube-apiserver on 10.0.0.2", "stop-service kube-controller-manager on 10.0.0.2", "stop-service kube-scheduler on 10.0.0.2"}},
		{name: "former nodes are forgotten last", snap: func() *Snapshot {
			s := converged(1, 2)
			s.Cluster.Nodes = s.Cluster.Nodes[:2]
			s.Kube.Nodes = s.Kube.Nodes[:2]
			s.Former = []string{"10.0.0.3"}
			return s
		}(), phase: PhaseForget, ops: []string{"forget-nodes on 10.0.0.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideOps(tt.snap)
			if got.Phase != tt.phase {
				t.Errorf("phase = %s, want %s (%+v)", got.Phase, tt.phase, got)
			}
			var ops []string
			for _, op := range got.Ops {
				if op.Reason == "" {
					t.Errorf("%s: no reason", op.Kind)
				}
				op.Reason = ""
				ops = append(ops, op.String())
			}
			if tt.ops != nil && !slices.Equal(ops, tt.ops) {
				t.Errorf("ops =\n  %s\nwant\n  %s", strings.Join(ops, "\n  "), strings.Join(tt.ops, "\n  "))
			}
			if tt.ops == nil && tt.waiting == "" && len(ops) > 0 && tt.phase == PhaseCompleted {
				t.Errorf("ops = %v, want none", ops)
			}
			if !strings.Contains(got.Waiting, tt.waiting) || (tt.waiting == "" && got.Waiting != "") {
				t.Errorf("waiting = %q, want %q", got.Waiting, tt.waiting)
			}
			if tt.waiting != "" && len(got.Ops) > 0 {
				t.Errorf("waiting with ops %v", ops)
			}
		})
	}
}

func (s *Snapshot) withResource(key, hash string) *Snapshot {
	s.WantResources[key] = hash
	return s
}

// TestDecideOpsConverges plays DecideOps against a model that carries
// every operation out perfectly and checks that a new cluster converges in
// a bounded number of rounds, whatever its shape.
func TestDecideOpsConverges(t *testing.T) {
	for _, shape := range [][2]int{{1, 0}, {1, 2}, {3, 0}, {3, 3}, {5, 10}} {
		t.Run(fmt.Sprintf("%dcp-%dw", shape[0], shape[1]), func(t *testing.T) {
			s := empty(shape[0], shape[1])
			var phases []Phase
			for round := 0; ; round++ {
				if round > 20 {
					t.Fatalf("no convergence after %d rounds: %v", round, phases)
				}
				r := DecideOps(s)
				phases = append(phases, r.Phase)
				if r.Phase == PhaseCompleted {
					break
				}
				if r.Waiting != "" {
					t.Fatalf("waiting: %s", r.Waiting)
				}
				for _, op := range r.Ops {
					apply(s, op)
				}
			}
			want := []Phase{PhaseRivers, PhaseEtcdBootstrap, PhaseK8sStart, PhaseK8sMaintain, PhaseCompleted}
			if !slices.Equal(phases, want) {
				t.Errorf("phases = %v, want %v", phases, want)
			}
		})
	}
}

// apply is a perfect executor of op on s (the model for convergence tests).
func apply(s *Snapshot, op Op) {
	switch op.Kind {
	case StartService:
		for _, a := range op.Nodes {
			s.Nodes[a].Services[op.Service] = cke.ServiceStatus{Running: true, Hash: s.Want[a][op.Service], CertNotAfter: s.Now.Add(7 * 24 * time.Hour)}
		}
	case EtcdBootstrap:
		s.Etcd.Reachable = true
		for _, a := range op.Nodes {
			s.Nodes[a].EtcdData = true
			s.Nodes[a].Services[cke.Etcd] = cke.ServiceStatus{Running: true, Hash: s.Want[a][cke.Etcd]}
			s.Etcd.Members = append(s.Etcd.Members, cke.EtcdMember{ID: uint64(len(s.Etcd.Members) + 1), Name: a, Address: a, Healthy: true})
		}
	case EtcdAddMember:
		a := op.Nodes[0]
		if m := s.Etcd.Member(a); m != nil {
			m.Name, m.Learner, m.Healthy = a, false, true
		} else {
			s.Etcd.Members = append(s.Etcd.Members, cke.EtcdMember{ID: uint64(100 + len(s.Etcd.Members)), Name: a, Address: a, Healthy: true})
		}
		s.Nodes[a].EtcdData = true
		s.Nodes[a].Services[cke.Etcd] = cke.ServiceStatus{Running: true, Hash: s.Want[a][cke.Etcd]}
	case EtcdRemoveMember:
		s.Etcd.Members = slices.DeleteFunc(s.Etcd.Members, func(m cke.EtcdMember) bool { return m.ID == op.MemberID })
	case EtcdDestroy:
		for _, a := range op.Nodes {
			s.Nodes[a].EtcdData = false
			delete(s.Nodes[a].Services, cke.Etcd)
		}
	case StopService:
		for _, a := range op.Nodes {
			delete(s.Nodes[a].Services, op.Service)
		}
	case ForgetNodes:
		for _, a := range op.Nodes {
			delete(s.Nodes, a)
		}
		s.Former = slices.DeleteFunc(s.Former, func(a string) bool { return slices.Contains(op.Nodes, a) })
	case RemoveNodes:
		s.Kube.Nodes = slices.DeleteFunc(s.Kube.Nodes, func(k cke.KubeNode) bool { return slices.Contains(op.Names, k.Name) })
	case UpdateNodes:
		for i, k := range s.Kube.Nodes {
			for _, n := range s.Cluster.Nodes {
				if n.Nodename() == k.Name && slices.Contains(op.Names, k.Name) {
					l, a, t := PatchNode(s.Cluster, n, &s.Kube.Nodes[i])
					s.Kube.Nodes[i].Labels, s.Kube.Nodes[i].Annotations, s.Kube.Nodes[i].Taints = l, a, t
				}
			}
		}
	case ApplyResources:
		if s.Kube.Resources == nil {
			s.Kube.Resources = map[string]string{}
		}
		for _, k := range op.Names {
			s.Kube.Resources[k] = s.WantResources[k]
		}
	case UpdateEndpoints:
		s.Kube.Endpoints = op.Nodes
	}
	if op.Kind == StartService && op.Service == cke.APIServer {
		s.Kube.Reachable = true
	}
	if op.Kind == StartService && op.Service == cke.Kubelet {
		for _, a := range op.Nodes {
			n := s.Cluster.Node(a)
			if slices.ContainsFunc(s.Kube.Nodes, func(k cke.KubeNode) bool { return k.Name == n.Nodename() }) {
				continue
			}
			labels, annotations, taints := NodeMetadata(s.Cluster, n)
			s.Kube.Nodes = append(s.Kube.Nodes, cke.KubeNode{Name: n.Nodename(), Labels: labels, Annotations: annotations, Taints: taints, Ready: true})
		}
	}
}

// TestDecideOpsConvergesAfterChanges changes cluster.yml of a converged
// cluster and plays the decisions against the perfect executor: every
// change converges, no operation ever waits, and the etcd cluster never
// loses its healthy majority on the way.
func TestDecideOpsConvergesAfterChanges(t *testing.T) {
	tests := []struct {
		name         string
		cps, workers int
		change       func(s *Snapshot)
	}{
		{"add a worker", 1, 2, func(s *Snapshot) {
			s.Cluster.Nodes = append(s.Cluster.Nodes, &cke.Node{Address: "10.0.0.4", User: "cke"})
			s.Nodes["10.0.0.4"] = &cke.NodeStatus{Reachable: true, Services: map[cke.Service]cke.ServiceStatus{}}
		}},
		{"move the only control plane", 1, 2, func(s *Snapshot) {
			s.Cluster.Nodes[0].ControlPlane, s.Cluster.Nodes[1].ControlPlane = false, true
		}},
		{"grow to three control planes", 1, 3, func(s *Snapshot) {
			s.Cluster.Nodes[1].ControlPlane, s.Cluster.Nodes[2].ControlPlane = true, true
		}},
		{"shrink to one control plane", 3, 1, func(s *Snapshot) {
			s.Cluster.Nodes[0].ControlPlane, s.Cluster.Nodes[2].ControlPlane = false, false
		}},
		{"remove a control plane and a worker from cluster.yml", 3, 2, func(s *Snapshot) {
			s.Cluster.Nodes = slices.Delete(s.Cluster.Nodes, 4, 5)
			s.Cluster.Nodes = slices.Delete(s.Cluster.Nodes, 2, 3)
			s.Former = []string{"10.0.0.3", "10.0.0.5"}
		}},
		{"a new API server flag and Kubernetes binary", 3, 2, func(s *Snapshot) {
			for _, a := range all(s) {
				for svc := range s.Want[a] {
					if svc != cke.Etcd && svc != cke.Rivers {
						s.Want[a][svc] = "h2"
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := converged(tt.cps, tt.workers)
			tt.change(s)
			// Services the new cluster.yml wants get hashes; what it no
			// longer wants loses them (units.Hashes would do this).
			for _, n := range s.Cluster.Nodes {
				if s.Want[n.Address] == nil {
					s.Want[n.Address] = map[cke.Service]string{}
				}
				svcs := append([]cke.Service{cke.Rivers}, cke.NodeServices...)
				if n.ControlPlane {
					svcs = append(append(svcs, cke.Etcd), cke.ControlPlaneServices...)
				}
				for _, svc := range svcs {
					if s.Want[n.Address][svc] == "" {
						s.Want[n.Address][svc] = "h1"
					}
				}
				if !n.ControlPlane {
					for _, svc := range append([]cke.Service{cke.Etcd}, cke.ControlPlaneServices...) {
						delete(s.Want[n.Address], svc)
					}
				}
			}
			var trace []string
			for round := 0; ; round++ {
				if round > 30 {
					t.Fatalf("no convergence:\n%s", strings.Join(trace, "\n"))
				}
				r := DecideOps(s)
				if r.Phase == PhaseCompleted {
					break
				}
				if r.Waiting != "" {
					t.Fatalf("waiting: %s\n%s", r.Waiting, strings.Join(trace, "\n"))
				}
				for _, op := range r.Ops {
					trace = append(trace, op.String())
					apply(s, op)
					if !s.Etcd.Healthy() {
						t.Fatalf("etcd lost its quorum after %s:\n%s", op, strings.Join(trace, "\n"))
					}
				}
			}
			for _, a := range cpAddrs(s) {
				if m := s.Etcd.Member(a); m == nil || !m.Voting() {
					t.Errorf("control plane %s is not a voting member", a)
				}
			}
			if v, _ := s.Etcd.Voters(); v != len(cpAddrs(s)) {
				t.Errorf("%d voters for %d control planes", v, len(cpAddrs(s)))
			}
			t.Logf("%d operations:\n%s", len(trace), strings.Join(trace, "\n"))
		})
	}
}
