// Package spec holds the resource documents that describe a virtual data
// center: the placemat v2 kinds (Network, NetworkNamespace, Node, Image,
// DeviceClass) with their YAML field names, so reference-style configs load
// unchanged, and two kinds of this project's own: NspawnNode, a light
// machine booted with systemd-nspawn, and Rootfs, the Debian tree it boots.
// Parse reads a multi-document YAML stream; Validate checks one cluster as a
// whole (names, references, addresses). Nothing here touches the host.
package spec

import "strconv"

// Resource kinds.
const (
	KindNetwork          = "Network"
	KindNetworkNamespace = "NetworkNamespace"
	KindNode             = "Node"
	KindImage            = "Image"
	KindDeviceClass      = "DeviceClass"
	KindNspawnNode       = "NspawnNode"
	KindRootfs           = "Rootfs"
)

// Network types.
const (
	NetworkInternal = "internal"
	NetworkExternal = "external"
	NetworkBMC      = "bmc"
)

// Cluster is every resource of one virtual data center, in document order
// within each kind.
type Cluster struct {
	Networks      []*Network          `json:"networks,omitempty"`
	Namespaces    []*NetworkNamespace `json:"namespaces,omitempty"`
	Nodes         []*Node             `json:"nodes,omitempty"`
	Images        []*Image            `json:"images,omitempty"`
	DeviceClasses []*DeviceClass      `json:"device-classes,omitempty"`
	NspawnNodes   []*NspawnNode       `json:"nspawn-nodes,omitempty"`
	Rootfses      []*Rootfs           `json:"rootfses,omitempty"`
}

// Network is an L2 segment: one Linux bridge.
type Network struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"`
	UseNAT  bool   `json:"use-nat,omitempty"`
	Address string `json:"address,omitempty"`
}

// Image is a disk image for Node volumes.
type Image struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	URL         string `json:"url,omitempty"`
	File        string `json:"file,omitempty"`
	Compression string `json:"compression,omitempty"`
}

// DeviceClass names a directory that holds volumes' backing files.
type DeviceClass struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Path string `json:"path"`
}

// SMBIOS are the system identification values a machine reports; Serial is
// what sabakan knows the machine by.
type SMBIOS struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
}

// Volume kinds of a Node.
const (
	VolumeImage    = "image"
	VolumeLocalDS  = "localds"
	VolumeRaw      = "raw"
	VolumeHostPath = "hostPath"
)

// Volume is a disk (or shared folder) attached to a Node.
type Volume struct {
	Kind          string `json:"kind"`
	Name          string `json:"name"`
	Cache         string `json:"cache,omitempty"`
	DeviceClass   string `json:"device-class,omitempty"`
	Image         string `json:"image,omitempty"`
	CopyOnWrite   bool   `json:"copy-on-write,omitempty"`
	UserData      string `json:"user-data,omitempty"`
	NetworkConfig string `json:"network-config,omitempty"`
	Size          string `json:"size,omitempty"`
	Format        string `json:"format,omitempty"`
	Path          string `json:"path,omitempty"`
	Writable      bool   `json:"writable,omitempty"`
}

// Node is a QEMU virtual machine.
type Node struct {
	Kind               string   `json:"kind"`
	Name               string   `json:"name"`
	Interfaces         []string `json:"interfaces,omitempty"`
	Volumes            []Volume `json:"volumes,omitempty"`
	Ignition           string   `json:"ignition,omitempty"`
	CPU                int      `json:"cpu,omitempty"`
	SMP                int      `json:"smp,omitempty"`
	Memory             string   `json:"memory,omitempty"`
	NetworkDeviceQueue int      `json:"network-device-queue,omitempty"`
	SMBIOS             SMBIOS   `json:"smbios,omitempty"`
	UEFI               bool     `json:"uefi,omitempty"`
	TPM                bool     `json:"tpm,omitempty"`
}

// Interface connects a namespace or an nspawn node to a Network. The
// interfaces of one resource are named eth0, eth1, … in order, unless Name
// (a vdc extension) names one: routers whose BIRD configuration refers to
// interfaces by name ("nodes", "spine1") need that.
//
// LinkScope (a vdc extension) gives the addresses scope link: they reach
// the link's own network only and are never chosen as the source toward
// other networks, as a management interface beside a node's routed
// address must be (a global one would become the source of the node's
// fabric traffic, which nobody routes back).
type Interface struct {
	Network   string   `json:"network"`
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	LinkScope bool     `json:"link-scope,omitempty"`
}

// IfName is the name of the i-th interface inside its namespace.
func (ifc Interface) IfName(i int) string {
	if ifc.Name != "" {
		return ifc.Name
	}
	return "eth" + strconv.Itoa(i)
}

// App is a program run inside a network namespace until the data center
// is destroyed.
type App struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
}

// NetworkNamespace is a router or a service host: a network namespace with
// interfaces on Networks, IP forwarding on, and apps (BIRD, dnsmasq) in it.
type NetworkNamespace struct {
	Kind        string      `json:"kind"`
	Name        string      `json:"name"`
	InitScripts []string    `json:"init-scripts,omitempty"`
	Interfaces  []Interface `json:"interfaces,omitempty"`
	Apps        []App       `json:"apps,omitempty"`
}

// Bind is a host path shown inside an nspawn node.
type Bind struct {
	Source   string `json:"source"`
	Target   string `json:"target,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// NspawnNode is a light machine: a full Debian system with systemd as PID 1,
// booted by systemd-nspawn from its own overlay on a Rootfs, in a network
// namespace of its own whose interfaces sit on Networks. Interfaces without
// addresses are left for DHCP.
type NspawnNode struct {
	Kind       string      `json:"kind"`
	Name       string      `json:"name"`
	Rootfs     string      `json:"rootfs"`
	Hostname   string      `json:"hostname,omitempty"`
	SMBIOS     SMBIOS      `json:"smbios,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	Binds      []Bind      `json:"binds,omitempty"`
	// InitScripts run on the host, with the node's root directory as their
	// only argument, after the overlay is mounted and before boot.
	InitScripts []string `json:"init-scripts,omitempty"`
}

// Rootfs is a Debian tree built with debootstrap and cached by its content.
type Rootfs struct {
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`
	Suite    string   `json:"suite,omitempty"`
	Variant  string   `json:"variant,omitempty"`
	Mirror   string   `json:"mirror,omitempty"`
	Packages []string `json:"packages,omitempty"`
}

// DefaultRootfsPackages are what every nspawn node needs to boot and be
// inspected: systemd as init, D-Bus, and network tools.
var DefaultRootfsPackages = []string{
	"systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps", "kmod", "ca-certificates", "curl",
}
