package bootserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/sabakan"
)

// Default ports of the services a boot server runs.
const (
	DefaultEtcdClientPort   = 2379
	DefaultEtcdPeerPort     = 2380
	DefaultVaultPort        = 8200
	DefaultVaultClusterPort = 8201
	DefaultBootstrapPort    = 8210
)

// MinServers is the smallest cluster setup accepts: fewer cannot keep an
// etcd quorum through the loss of one server.
const MinServers = 3

// Cluster describes where the boot servers are, so that they can find each
// other before etcd exists. It is read from a YAML file (see
// docs/bootstrap.md); servers not listed there get the address the IPAM plan
// derives from their LRN.
type Cluster struct {
	// Servers lists boot servers with explicit addresses.
	Servers []Server `json:"servers,omitempty"`
	// IPAM derives the address of a boot server not in Servers.
	IPAM *sabakan.IPAMConfig `json:"ipam,omitempty"`

	EtcdClientPort   int `json:"etcd-client-port,omitempty"`
	EtcdPeerPort     int `json:"etcd-peer-port,omitempty"`
	VaultPort        int `json:"vault-port,omitempty"`
	VaultClusterPort int `json:"vault-cluster-port,omitempty"`
	BootstrapPort    int `json:"bootstrap-port,omitempty"`
}

// Server is one boot server: its logical rack number and node address.
type Server struct {
	LRN     int    `json:"lrn"`
	Address string `json:"address"`
}

// Name is the server's etcd member and certificate name.
func (s Server) Name() string { return "boot-" + strconv.Itoa(s.LRN) }

// LoadCluster reads a cluster description; a missing file at an optional
// path gives the default (reference address plan, default ports).
func LoadCluster(path string, optional bool) (*Cluster, error) {
	c := &Cluster{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && optional:
	case err != nil:
		return nil, fmt.Errorf("read cluster description: %w", err)
	default:
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("cluster description %s: %w", path, err)
		}
	}
	c.FillDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("cluster description %s: %w", path, err)
	}
	return c, nil
}

// FillDefaults gives every unset port its default, and a description
// that lists no server and no plan the reference address plan. LoadCluster
// does it; a description from elsewhere (a join ticket) needs it.
func (c *Cluster) FillDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.EtcdClientPort, DefaultEtcdClientPort)
	def(&c.EtcdPeerPort, DefaultEtcdPeerPort)
	def(&c.VaultPort, DefaultVaultPort)
	def(&c.VaultClusterPort, DefaultVaultClusterPort)
	def(&c.BootstrapPort, DefaultBootstrapPort)
	if c.IPAM == nil && len(c.Servers) == 0 {
		c.IPAM = sabakan.ReferenceIPAM()
	}
}

func (c *Cluster) validate() error {
	for _, p := range []int{c.EtcdClientPort, c.EtcdPeerPort, c.VaultPort, c.VaultClusterPort, c.BootstrapPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d out of range", p)
		}
	}
	seen := map[int]bool{}
	addrs := map[string]int{}
	for _, s := range c.Servers {
		if s.LRN < 0 {
			return fmt.Errorf("negative LRN %d", s.LRN)
		}
		if seen[s.LRN] {
			return fmt.Errorf("LRN %d is listed twice", s.LRN)
		}
		seen[s.LRN] = true
		if _, err := netip.ParseAddr(s.Address); err != nil {
			return fmt.Errorf("LRN %d: bad address %q", s.LRN, s.Address)
		}
		if other, dup := addrs[s.Address]; dup {
			return fmt.Errorf("LRN %d and %d share address %s", other, s.LRN, s.Address)
		}
		addrs[s.Address] = s.LRN
	}
	if c.IPAM != nil {
		if err := c.IPAM.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the boot server with the given LRN.
func (c *Cluster) Lookup(lrn int) (Server, error) {
	for _, s := range c.Servers {
		if s.LRN == lrn {
			return s, nil
		}
	}
	if c.IPAM == nil {
		return Server{}, fmt.Errorf("boot server %d is not in the cluster description and no ipam plan derives its address", lrn)
	}
	if err := c.IPAM.CheckPlacement(uint(lrn), c.IPAM.NodeIndexOffset); err != nil {
		return Server{}, fmt.Errorf("boot server %d: %w", lrn, err)
	}
	return Server{LRN: lrn, Address: c.IPAM.NodeAddresses(uint(lrn), c.IPAM.NodeIndexOffset)[0].String()}, nil
}

// Resolve checks a list of LRNs given on the command line and returns their
// servers sorted by LRN. min is the least number of servers accepted.
func (c *Cluster) Resolve(lrns []int, min int) ([]Server, error) {
	if len(lrns) < min {
		return nil, fmt.Errorf("%d boot server(s) given, at least %d are needed so that etcd keeps a quorum when one fails: list every boot server's LRN, e.g. neco setup 0 1 2", len(lrns), min)
	}
	sorted := slices.Clone(lrns)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, fmt.Errorf("LRN %d is given twice: each boot server is listed once", sorted[i])
		}
	}
	out := make([]Server, 0, len(sorted))
	addrs := map[string]int{}
	for _, l := range sorted {
		s, err := c.Lookup(l)
		if err != nil {
			return nil, err
		}
		if other, dup := addrs[s.Address]; dup {
			return nil, fmt.Errorf("boot servers %d and %d would share address %s: fix the cluster description", other, l, s.Address)
		}
		addrs[s.Address] = l
		out = append(out, s)
	}
	return out, nil
}

// ParseLRNs parses LRN arguments.
func ParseLRNs(args []string) ([]int, error) {
	out := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a logical rack number (a non-negative integer)", a)
		}
		out[i] = n
	}
	return out, nil
}

// LocalLRN finds which of servers this host is, by the addresses assigned
// to its interfaces. Exactly one must match.
func LocalLRN(servers []Server) (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, err
	}
	local := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			local[ipn.IP.String()] = true
		}
	}
	found := -1
	for _, s := range servers {
		if local[s.Address] {
			if found >= 0 {
				return 0, fmt.Errorf("this host has the addresses of boot servers %d and %d: pass --lrn", found, s.LRN)
			}
			found = s.LRN
		}
	}
	if found < 0 {
		return 0, errors.New("none of the boot servers' addresses is assigned to this host: pass --lrn, or fix the cluster description")
	}
	return found, nil
}

// URLs of a server's services.
func (c *Cluster) EtcdClientURL(s Server) string { return url(s.Address, c.EtcdClientPort) }

// EtcdPeerURL is the server's etcd peer URL.
func (c *Cluster) EtcdPeerURL(s Server) string { return url(s.Address, c.EtcdPeerPort) }

// VaultURL is the server's Vault API URL.
func (c *Cluster) VaultURL(s Server) string { return url(s.Address, c.VaultPort) }

// VaultClusterURL is the server's Vault cluster (request forwarding) URL.
func (c *Cluster) VaultClusterURL(s Server) string { return url(s.Address, c.VaultClusterPort) }

// BootstrapURL is the URL of the bootstrap rendezvous served by s.
func (c *Cluster) BootstrapURL(s Server) string { return url(s.Address, c.BootstrapPort) }

// EtcdEndpoints are the client URLs of servers.
func (c *Cluster) EtcdEndpoints(servers []Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = c.EtcdClientURL(s)
	}
	return out
}

func url(addr string, port int) string {
	return "https://" + net.JoinHostPort(addr, strconv.Itoa(port))
}
