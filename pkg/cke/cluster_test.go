package cke

import (
	"errors"
	"strings"
	"testing"
)

const goodCluster = `
name: dc
service_subnet: 10.68.0.0/16
dns_servers: [10.69.0.3]
pod_network:
  subnets: [10.64.0.0/16, 10.65.0.0/24]
nodes:
- address: 10.69.0.4
  hostname: rack0-cs1
  user: cybozu
  control_plane: true
  labels: {topology.kubernetes.io/zone: rack0}
- address: 10.69.0.5
  user: cybozu
  taints: [{key: cke.openneco.io/state, value: unreachable, effect: NoSchedule}]
options:
  kube-api:
    extra_args: [--audit-log-maxage=1]
  kubelet:
    config: {maxPods: 200}
  kube-proxy:
    mode: iptables
`

func TestParseClusterAndValidate(t *testing.T) {
	c, err := ParseCluster([]byte(goodCluster))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Nodes[1].Nodename(); got != "10.69.0.5" {
		t.Errorf("nodename = %s", got)
	}
	if len(c.ControlPlanes()) != 1 || len(c.Workers()) != 1 || c.Node("10.69.0.5") != c.Nodes[1] || c.Node("1.2.3.4") != nil {
		t.Error("accessors disagree with the file")
	}
	if c.Options.Kubelet.Config["maxPods"] != float64(200) || c.Options.APIServer.ExtraArgs[0] != "--audit-log-maxage=1" {
		t.Errorf("options = %+v", c.Options)
	}
}

func TestParseClusterRefusesUnknownFields(t *testing.T) {
	for _, in := range []string{
		"name: a\nnodez: []\n",
		"name: a\noptions:\n  kubelet:\n    extra_binds: [{source: /x}]\n",
		"name: [\n",
	} {
		if _, err := ParseCluster([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", in, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Cluster)
		want string
	}{
		{"bad name", func(c *Cluster) { c.Name = "DC_1" }, "name \"DC_1\""},
		{"no nodes", func(c *Cluster) { c.Nodes = nil }, "at least one node"},
		{"no control plane", func(c *Cluster) { c.Nodes[0].ControlPlane = false }, "no control_plane node"},
		{"service subnet missing", func(c *Cluster) { c.ServiceSubnet = "" }, "service_subnet: required"},
		{"service subnet host bits", func(c *Cluster) { c.ServiceSubnet = "10.68.0.1/16" }, "did you mean 10.68.0.0/16"},
		{"service subnet v6", func(c *Cluster) { c.ServiceSubnet = "fd00::/108" }, "must be IPv4"},
		{"node inside services", func(c *Cluster) { c.Nodes[1].Address = "10.68.1.1" }, "inside service_subnet"},
		{"bad address", func(c *Cluster) { c.Nodes[1].Address = "node-1" }, "nodes[1].address \"node-1\""},
		{"duplicate address", func(c *Cluster) { c.Nodes[1].Address = "10.69.0.4" }, "also nodes[0]'s"},
		{"duplicate name", func(c *Cluster) { c.Nodes[1].Hostname = "rack0-cs1" }, "node name rack0-cs1 is also nodes[0]'s"},
		{"no user", func(c *Cluster) { c.Nodes[1].User = "" }, "nodes[1].user: required"},
		{"bad label", func(c *Cluster) { c.Nodes[1].Labels = map[string]string{"a/b/c": "x"} }, "key \"a/b/c\""},
		{"bad label value", func(c *Cluster) { c.Nodes[1].Labels = map[string]string{"zone": "-x"} }, "value \"-x\""},
		{"bad taint effect", func(c *Cluster) { c.Nodes[1].Taints[0].Effect = "Never" }, "effect \"Never\""},
		{"bad dns server", func(c *Cluster) { c.DNSServers = []string{"dns"} }, "dns_servers[0]"},
		{"bad extra arg", func(c *Cluster) { c.Options.Scheduler.ExtraArgs = []string{"-v=2"} }, "options.kube-scheduler: extra_args[0]"},
		{"bad env", func(c *Cluster) { c.Options.Etcd.ExtraEnv = map[string]string{"A B": "1"} }, "options.etcd: extra_env"},
		{"bad proxy mode", func(c *Cluster) { c.Options.Proxy.Mode = "userspace" }, "options.kube-proxy.mode"},
		{"bad podnet arg", func(c *Cluster) { c.Options.Podnet.ExtraArgs = []string{"x"} }, "options.podnet: extra_args[0]"},
		{"pod subnet not a CIDR", func(c *Cluster) { c.PodNetwork.Subnets[1] = "10.65.0.0" }, "pod_network.subnets[1] \"10.65.0.0\""},
		{"pod subnet host bits", func(c *Cluster) { c.PodNetwork.Subnets[1] = "10.65.0.1/24" }, "did you mean 10.65.0.0/24"},
		{"pod subnet v6", func(c *Cluster) { c.PodNetwork.Subnets[1] = "fd00::/64" }, "must be IPv4"},
		{"pod subnets overlap", func(c *Cluster) { c.PodNetwork.Subnets[1] = "10.64.8.0/24" }, "overlaps 10.64.0.0/16"},
		{"pod subnet overlaps services", func(c *Cluster) { c.PodNetwork.Subnets[1] = "10.68.4.0/24" }, "overlaps service_subnet"},
		{"pod subnet smaller than a block", func(c *Cluster) { c.PodNetwork.Subnets[1] = "10.65.0.0/28" }, "smaller than one block of 2^5"},
		{"block size too large", func(c *Cluster) { b := 17; c.PodNetwork.BlockSizeBits = &b }, "block_size_bits 17"},
		{"block size without subnets", func(c *Cluster) { b := 4; c.PodNetwork = PodNetwork{BlockSizeBits: &b} }, "set without subnets"},
		{"node inside pods", func(c *Cluster) { c.Nodes[1].Address = "10.64.1.1" }, "inside pod_network subnet 10.64.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCluster([]byte(goodCluster))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(c)
			err = c.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := &Cluster{Name: "x", ServiceSubnet: "bad", Nodes: []*Node{{Address: "a"}}}
	err := c.Validate()
	for _, want := range []string{"service_subnet", "nodes[0].address", "nodes[0].user", "no control_plane"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %s", err, want)
		}
	}
}

func TestConstraints(t *testing.T) {
	c, err := ParseCluster([]byte(goodCluster))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ParseConstraints([]byte("control-plane-count: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cons.MinimumWorkersRate != 80 {
		t.Errorf("default minimum-workers-rate lost: %+v", cons)
	}
	if err := cons.Check(c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "1 control planes") {
		t.Errorf("check = %v", err)
	}
	if err := DefaultConstraints().Check(c); err != nil {
		t.Errorf("default constraints: %v", err)
	}
	cons.ControlPlaneCount, cons.MaximumWorkers = 1, 0
	if err := cons.Check(c); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"control-plane-count: 0", "minimum-workers-rate: 101", "maximum-workers: -1", "control-plane-count: x", "unknown: 1"} {
		if _, err := ParseConstraints([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzParseCluster(f *testing.F) {
	f.Add([]byte(goodCluster))
	f.Add([]byte("name: a\nnodes: [{address: 1.2.3.4}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCluster(data)
		if err != nil {
			return
		}
		_ = c.Validate() // must not panic, whatever the file holds
	})
}
