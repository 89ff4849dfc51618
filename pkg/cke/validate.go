package cke

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Validate reports every problem of c at once, each naming the field, so
// that an operator fixes a file in one pass. The error wraps ErrInvalid.
func (c *Cluster) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !dnsLabel.MatchString(c.Name) {
		bad("name %q: must be a DNS label (lower-case letters, digits, '-'; at most 63)", c.Name)
	}
	if len(c.Nodes) == 0 {
		bad("nodes: at least one node is needed")
	}
	svc, err := netip.ParsePrefix(c.ServiceSubnet)
	switch {
	case c.ServiceSubnet == "":
		bad("service_subnet: required (a CIDR such as 10.68.0.0/16)")
	case err != nil:
		bad("service_subnet %q: %v", c.ServiceSubnet, err)
	case !svc.Addr().Is4():
		bad("service_subnet %q: must be IPv4", c.ServiceSubnet)
	case svc.Masked() != svc:
		bad("service_subnet %q: host bits set (did you mean %s?)", c.ServiceSubnet, svc.Masked())
	case svc.Bits() > 28 || svc.Bits() < 12:
		bad("service_subnet %q: prefix length must be between /12 and /28", c.ServiceSubnet)
	}
	errs = append(errs, c.PodNetwork.validate(svc)...)
	for i, s := range c.DNSServers {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			bad("dns_servers[%d] %q: not an IPv4 address", i, s)
		}
	}

	addrs := map[string]int{}
	names := map[string]int{}
	controlPlanes := 0
	for i, n := range c.Nodes {
		where := fmt.Sprintf("nodes[%d]", i)
		if n == nil {
			bad("%s: empty", where)
			continue
		}
		a, err := netip.ParseAddr(n.Address)
		switch {
		case err != nil || !a.Is4():
			bad("%s.address %q: not an IPv4 address", where, n.Address)
		case svc.IsValid() && svc.Contains(a):
			bad("%s.address %s: inside service_subnet %s", where, n.Address, c.ServiceSubnet)
		}
		for _, s := range c.PodNetwork.Subnets {
			if p, err := netip.ParsePrefix(s); err == nil && a.IsValid() && p.Contains(a) {
				bad("%s.address %s: inside pod_network subnet %s", where, n.Address, s)
			}
		}
		if j, dup := addrs[n.Address]; dup {
			bad("%s.address %s: also nodes[%d]'s", where, n.Address, j)
		}
		addrs[n.Address] = i
		if n.Hostname != "" && !dnsSubdomain.MatchString(n.Hostname) {
			bad("%s.hostname %q: must be a lower-case DNS name", where, n.Hostname)
		}
		if j, dup := names[n.Nodename()]; dup {
			bad("%s: node name %s is also nodes[%d]'s", where, n.Nodename(), j)
		}
		names[n.Nodename()] = i
		if n.User == "" {
			bad("%s.user: required (the SSH user on the node)", where)
		}
		if n.ControlPlane {
			controlPlanes++
		}
		for k, v := range n.Labels {
			if err := ValidateLabel(k, v); err != nil {
				bad("%s.labels: %v", where, err)
			}
		}
		for k := range n.Annotations {
			if !qualifiedName(k) {
				bad("%s.annotations: key %q: not a qualified name", where, k)
			}
		}
		for j, t := range n.Taints {
			if err := t.validate(); err != nil {
				bad("%s.taints[%d]: %v", where, j, err)
			}
		}
	}
	if len(c.Nodes) > 0 && controlPlanes == 0 {
		bad("nodes: no control_plane node")
	}

	for name, p := range map[string]ServiceParams{
		"etcd": c.Options.Etcd, "rivers": c.Options.Rivers, "kube-api": c.Options.APIServer,
		"kube-controller-manager": c.Options.ControllerManager, "kube-scheduler": c.Options.Scheduler, "podnet": c.Options.Podnet,
		"kube-proxy": c.Options.Proxy.ServiceParams, "kubelet": c.Options.Kubelet.ServiceParams,
	} {
		if err := p.validate(); err != nil {
			bad("options.%s: %v", name, err)
		}
	}
	switch c.Options.Proxy.Mode {
	case "", "iptables", "nftables", "ipvs":
	default:
		bad("options.kube-proxy.mode %q: must be iptables, nftables or ipvs", c.Options.Proxy.Mode)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w cluster: %w", ErrInvalid, errors.Join(errs...))
}

func (p ServiceParams) validate() error {
	for i, a := range p.ExtraArgs {
		if !strings.HasPrefix(a, "--") || len(a) < 3 || strings.ContainsAny(a, "\n\x00") {
			return fmt.Errorf("extra_args[%d] %q: must be one --flag or --flag=value", i, a)
		}
	}
	for k, v := range p.ExtraEnv {
		if !envName.MatchString(k) || strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("extra_env %q: not a valid environment variable", k)
		}
	}
	return nil
}

func (t Taint) validate() error {
	switch {
	case !qualifiedName(t.Key):
		return fmt.Errorf("key %q: not a qualified name", t.Key)
	case len(t.Value) > 63 || (t.Value != "" && !labelValue.MatchString(t.Value)):
		return fmt.Errorf("value %q: not a label value", t.Value)
	}
	switch t.Effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
		return nil
	}
	return fmt.Errorf("effect %q: must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
}

// ValidateLabel checks a Kubernetes label: a qualified key and a value.
func ValidateLabel(k, v string) error {
	if !qualifiedName(k) {
		return fmt.Errorf("key %q: not a qualified name", k)
	}
	if len(v) > 63 || (v != "" && !labelValue.MatchString(v)) {
		return fmt.Errorf("%s: value %q: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric", k, v)
	}
	return nil
}

// qualifiedName is Kubernetes' label/annotation key syntax: an optional
// DNS subdomain prefix and a name of at most 63 characters.
func qualifiedName(k string) bool {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		name, prefix = prefix, ""
	} else if len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
		return false
	}
	return len(name) <= 63 && labelValue.MatchString(name)
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelValue   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validate checks the pod network's subnets: canonical IPv4 CIDRs that
// overlap neither each other nor the service subnet, each holding at least
// one block.
func (p PodNetwork) validate(svc netip.Prefix) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	bits := p.Bits()
	if bits < 0 || bits > 16 {
		bad("pod_network.block_size_bits %d: must be between 0 (/32 blocks) and 16 (/16 blocks)", bits)
	}
	if p.BlockSizeBits != nil && !p.Enabled() {
		bad("pod_network.block_size_bits: set without subnets")
	}
	var seen []netip.Prefix
	for i, s := range p.Subnets {
		where := fmt.Sprintf("pod_network.subnets[%d] %q", i, s)
		sub, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad("%s: %v", where, err)
			continue
		case !sub.Addr().Is4():
			bad("%s: must be IPv4", where)
			continue
		case sub.Masked() != sub:
			bad("%s: host bits set (did you mean %s?)", where, sub.Masked())
			continue
		case sub.Bits() > 32-bits:
			bad("%s: smaller than one block of 2^%d addresses", where, bits)
		case svc.IsValid() && svc.Overlaps(sub):
			bad("%s: overlaps service_subnet %s", where, svc)
		}
		for _, o := range seen {
			if o.Overlaps(sub) {
				bad("%s: overlaps %s", where, o)
			}
		}
		seen = append(seen, sub)
	}
	return errs
}
