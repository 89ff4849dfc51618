package spec

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// MaxNetworkName is the longest Network name: placemat names the bridge
// after it and Linux interface names hold 15 bytes.
const MaxNetworkName = 15

var (
	reName    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	rePackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	reSuite   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	reSerial  = regexp.MustCompile(`^[!-.0-~]{1,128}$`) // printable, no '/' or space
)

// Validate checks the whole cluster: names, references between resources,
// addresses and sizes. It fills in defaults (Network type internal, Rootfs
// suite and variant, NspawnNode hostname).
func (c *Cluster) Validate() error {
	networks := map[string]*Network{}
	for _, n := range c.Networks {
		if err := n.validate(); err != nil {
			return err
		}
		if networks[n.Name] != nil {
			return invalid("Network %s is defined twice", n.Name)
		}
		networks[n.Name] = n
	}
	images := map[string]bool{}
	for _, im := range c.Images {
		if err := im.validate(); err != nil {
			return err
		}
		if images[im.Name] {
			return invalid("Image %s is defined twice", im.Name)
		}
		images[im.Name] = true
	}
	classes := map[string]bool{}
	for _, d := range c.DeviceClasses {
		if !reName.MatchString(d.Name) {
			return invalid("DeviceClass name %q: want lower-case letters, digits and '-'", d.Name)
		}
		if !filepath.IsAbs(d.Path) {
			return invalid("DeviceClass %s: path %q is not absolute", d.Name, d.Path)
		}
		if classes[d.Name] {
			return invalid("DeviceClass %s is defined twice", d.Name)
		}
		classes[d.Name] = true
	}
	rootfses := map[string]bool{}
	for _, r := range c.Rootfses {
		if err := r.validate(); err != nil {
			return err
		}
		if rootfses[r.Name] {
			return invalid("Rootfs %s is defined twice", r.Name)
		}
		rootfses[r.Name] = true
	}
	// Namespaces, QEMU nodes and nspawn nodes are all "hosts": one name
	// space, since each gets a network namespace or a console by name.
	hosts := map[string]string{}
	claim := func(kind, name string) error {
		if !reName.MatchString(name) {
			return invalid("%s name %q: want 1-63 lower-case letters, digits and '-'", kind, name)
		}
		if prev, ok := hosts[name]; ok {
			return invalid("%s %s: the name is already used by a %s", kind, name, prev)
		}
		hosts[name] = kind
		return nil
	}
	for _, ns := range c.Namespaces {
		if err := claim(KindNetworkNamespace, ns.Name); err != nil {
			return err
		}
		if err := validateInterfaces(KindNetworkNamespace, ns.Name, ns.Interfaces, networks); err != nil {
			return err
		}
		apps := map[string]bool{}
		for _, a := range ns.Apps {
			if !reName.MatchString(a.Name) {
				return invalid("NetworkNamespace %s: app name %q: want lower-case letters, digits and '-'", ns.Name, a.Name)
			}
			if apps[a.Name] {
				return invalid("NetworkNamespace %s: app %s is defined twice", ns.Name, a.Name)
			}
			apps[a.Name] = true
			if len(a.Command) == 0 || a.Command[0] == "" {
				return invalid("NetworkNamespace %s: app %s has no command", ns.Name, a.Name)
			}
		}
		for _, s := range ns.InitScripts {
			if s == "" {
				return invalid("NetworkNamespace %s: empty init script path", ns.Name)
			}
		}
	}
	serials := map[string]string{}
	claimSerial := func(host, serial string) error {
		if serial == "" {
			return nil
		}
		if !reSerial.MatchString(serial) {
			return invalid("%s: smbios serial %q: want 1-128 printable characters without '/' or spaces", host, serial)
		}
		if prev, ok := serials[serial]; ok {
			return invalid("%s: smbios serial %s is already used by %s", host, serial, prev)
		}
		serials[serial] = host
		return nil
	}
	for _, n := range c.Nodes {
		if err := claim(KindNode, n.Name); err != nil {
			return err
		}
		if err := n.validate(networks, images, classes); err != nil {
			return err
		}
		if err := claimSerial(n.Name, n.SMBIOS.Serial); err != nil {
			return err
		}
	}
	for _, n := range c.NspawnNodes {
		if err := claim(KindNspawnNode, n.Name); err != nil {
			return err
		}
		if !rootfses[n.Rootfs] {
			return invalid("NspawnNode %s: Rootfs %q is not defined", n.Name, n.Rootfs)
		}
		if n.Hostname == "" {
			n.Hostname = n.Name
		}
		if !reName.MatchString(n.Hostname) {
			return invalid("NspawnNode %s: hostname %q: want lower-case letters, digits and '-'", n.Name, n.Hostname)
		}
		if err := claimSerial(n.Name, n.SMBIOS.Serial); err != nil {
			return err
		}
		if err := validateInterfaces(KindNspawnNode, n.Name, n.Interfaces, networks); err != nil {
			return err
		}
		for _, b := range n.Binds {
			if !filepath.IsAbs(b.Source) || (b.Target != "" && !filepath.IsAbs(b.Target)) {
				return invalid("NspawnNode %s: bind %s:%s: paths must be absolute", n.Name, b.Source, b.Target)
			}
			if strings.ContainsAny(b.Source+b.Target, ":,") {
				return invalid("NspawnNode %s: bind %s:%s: paths must not contain ':' or ','", n.Name, b.Source, b.Target)
			}
		}
	}
	return nil
}

func (n *Network) validate() error {
	if !reName.MatchString(n.Name) || len(n.Name) > MaxNetworkName {
		return invalid("Network name %q: want 1-%d lower-case letters, digits and '-'", n.Name, MaxNetworkName)
	}
	if n.Type == "" {
		n.Type = NetworkInternal
	}
	if n.UseNAT {
		return invalid("Network %s: use-nat is refused: a virtual data center is never routed or NATed to the host's network", n.Name)
	}
	switch n.Type {
	case NetworkInternal:
		if n.Address != "" {
			return invalid("Network %s: an internal network has no host address (got %q)", n.Name, n.Address)
		}
	case NetworkExternal, NetworkBMC:
		if n.Address == "" {
			return invalid("Network %s: a %s network needs an address", n.Name, n.Type)
		}
		if _, err := netip.ParsePrefix(n.Address); err != nil {
			return invalid("Network %s: address %q: want an address with prefix length, like 10.0.0.1/24", n.Name, n.Address)
		}
	default:
		return invalid("Network %s: type %q: want internal, external or bmc", n.Name, n.Type)
	}
	return nil
}

func (im *Image) validate() error {
	if !reName.MatchString(im.Name) {
		return invalid("Image name %q: want lower-case letters, digits and '-'", im.Name)
	}
	if (im.URL == "") == (im.File == "") {
		return invalid("Image %s: set exactly one of url and file", im.Name)
	}
	switch im.Compression {
	case "", "gzip", "bzip2":
	default:
		return invalid("Image %s: compression %q: want gzip or bzip2", im.Name, im.Compression)
	}
	return nil
}

func (r *Rootfs) validate() error {
	if !reName.MatchString(r.Name) {
		return invalid("Rootfs name %q: want lower-case letters, digits and '-'", r.Name)
	}
	if r.Suite == "" {
		r.Suite = "bookworm"
	}
	if r.Variant == "" {
		r.Variant = "minbase"
	}
	if !reSuite.MatchString(r.Suite) {
		return invalid("Rootfs %s: suite %q is not a Debian suite name", r.Name, r.Suite)
	}
	switch r.Variant {
	case "minbase", "buildd", "fakechroot", "-":
	default:
		return invalid("Rootfs %s: variant %q: want minbase, buildd or -", r.Name, r.Variant)
	}
	if r.Mirror != "" && !strings.HasPrefix(r.Mirror, "http://") && !strings.HasPrefix(r.Mirror, "https://") && !strings.HasPrefix(r.Mirror, "file:/") {
		return invalid("Rootfs %s: mirror %q: want an http(s) or file URL", r.Name, r.Mirror)
	}
	for _, p := range r.Packages {
		if !rePackage.MatchString(p) {
			return invalid("Rootfs %s: %q is not a Debian package name", r.Name, p)
		}
	}
	return nil
}

func (n *Node) validate(networks map[string]*Network, images, classes map[string]bool) error {
	for _, ifname := range n.Interfaces {
		if networks[ifname] == nil {
			return invalid("Node %s: Network %q is not defined", n.Name, ifname)
		}
	}
	if n.CPU < 0 || n.SMP < 0 || n.NetworkDeviceQueue < 0 {
		return invalid("Node %s: cpu, smp and network-device-queue must not be negative", n.Name)
	}
	if n.Memory != "" {
		if _, err := ParseSize(n.Memory); err != nil {
			return invalid("Node %s: memory: %v", n.Name, err)
		}
	}
	vols := map[string]bool{}
	for _, v := range n.Volumes {
		if !reName.MatchString(v.Name) {
			return invalid("Node %s: volume name %q: want lower-case letters, digits and '-'", n.Name, v.Name)
		}
		if vols[v.Name] {
			return invalid("Node %s: volume %s is defined twice", n.Name, v.Name)
		}
		vols[v.Name] = true
		if v.DeviceClass != "" && !classes[v.DeviceClass] {
			return invalid("Node %s: volume %s: DeviceClass %q is not defined", n.Name, v.Name, v.DeviceClass)
		}
		switch v.Cache {
		case "", "writeback", "none", "writethrough", "directsync", "unsafe":
		default:
			return invalid("Node %s: volume %s: cache %q is not a QEMU cache mode", n.Name, v.Name, v.Cache)
		}
		switch v.Kind {
		case VolumeImage:
			if !images[v.Image] {
				return invalid("Node %s: volume %s: Image %q is not defined", n.Name, v.Name, v.Image)
			}
		case VolumeRaw:
			if _, err := ParseSize(v.Size); err != nil {
				return invalid("Node %s: volume %s: size: %v", n.Name, v.Name, err)
			}
			switch v.Format {
			case "", "qcow2", "raw":
			default:
				return invalid("Node %s: volume %s: format %q: want qcow2 or raw", n.Name, v.Name, v.Format)
			}
		case VolumeLocalDS:
			if v.UserData == "" {
				return invalid("Node %s: volume %s: a localds volume needs user-data", n.Name, v.Name)
			}
		case VolumeHostPath:
			if !filepath.IsAbs(v.Path) {
				return invalid("Node %s: volume %s: path %q is not absolute", n.Name, v.Name, v.Path)
			}
		default:
			return invalid("Node %s: volume %s: kind %q: want image, localds, raw or hostPath", n.Name, v.Name, v.Kind)
		}
	}
	return nil
}

var reIfName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$`)

func validateInterfaces(kind, name string, ifs []Interface, networks map[string]*Network) error {
	names := map[string]bool{"lo": true}
	for i, ifc := range ifs {
		if ifc.Name != "" && !reIfName.MatchString(ifc.Name) {
			return invalid("%s %s: interface name %q: want 1-15 letters, digits, '_', '.' or '-', starting with a letter", kind, name, ifc.Name)
		}
		if names[ifc.IfName(i)] {
			return invalid("%s %s: interface name %s is used twice", kind, name, ifc.IfName(i))
		}
		names[ifc.IfName(i)] = true
		if networks[ifc.Network] == nil {
			return invalid("%s %s: eth%d: Network %q is not defined", kind, name, i, ifc.Network)
		}
		for _, a := range ifc.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return invalid("%s %s: eth%d: address %q: want an address with prefix length, like 10.0.0.1/24", kind, name, i, a)
			}
			if p.Addr().Is4() && p.Bits() < 31 && p == p.Masked() {
				return invalid("%s %s: eth%d: address %s is a network address, not a host's", kind, name, i, a)
			}
		}
	}
	return nil
}

// ParseSize parses a QEMU-style size: a number with an optional binary
// suffix K, M, G or T ("4G" is 4 GiB). A plain number is bytes.
func ParseSize(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := uint64(1)
	num := s
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	}
	if mult != 1 {
		num = s[:len(s)-1]
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	if v > (1<<63)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v * mult, nil
}
