// Package qemu turns a placemat Node into a QEMU command line. The machine
// gets one tap (already on its bridge) per interface, SMBIOS identity,
// OVMF firmware with its own variable store and PXE off (so it HTTP-boots)
// when uefi is set, its volumes,
// a serial console on a UNIX socket that is also logged to a file, and KVM
// acceleration only when KVM can really run guests; otherwise TCG.
package qemu

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/openneco/neco/pkg/vdc/spec"
)

// Firmware files of Debian's ovmf package.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// ChooseAccel resolves "auto" (or ""): KVM only when asked for by the
// environment variable VDC_ACCEL=kvm and /dev/kvm exists. A /dev/kvm that
// exists is not enough: some hosts expose a paravirtual one that hangs
// guests, so KVM is opt-in.
func ChooseAccel(want string) (string, error) {
	switch want {
	case "", "auto":
		if os.Getenv("VDC_ACCEL") == AccelKVM {
			if _, err := os.Stat("/dev/kvm"); err == nil {
				return AccelKVM, nil
			}
		}
		return AccelTCG, nil
	case AccelKVM, AccelTCG:
		return want, nil
	}
	return "", fmt.Errorf("qemu: accelerator %q: want auto, kvm or tcg", want)
}

// DefaultSerial is the SMBIOS serial of a node without one: a hash of its
// name, as placemat does.
func DefaultSerial(name string) string {
	h := sha1.Sum([]byte(name))
	return hex.EncodeToString(h[:])
}

// MAC is a stable, locally administered address for a node's i-th NIC.
func MAC(node string, i int) string {
	h := sha1.Sum([]byte(node + "/" + strconv.Itoa(i)))
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3])
}

// Disk is a prepared volume file or a shared folder.
type Disk struct {
	Name     string
	Path     string
	Format   string // qcow2 or raw; empty for a hostPath folder
	Cache    string
	Folder   bool // a 9p shared folder at Path
	Writable bool
}

// Options are the host-side resources prepared for one node.
type Options struct {
	Accel         string
	Taps          []string // tap device per interface, in order
	Disks         []Disk
	OVMFVars      string // this node's copy of the variable store
	SerialSocket  string
	SerialLog     string
	MonitorSocket string
	Ignition      string
}

// Args returns the QEMU command line.
func Args(n *spec.Node, o Options) []string {
	cpus := n.CPU
	if n.SMP > cpus {
		cpus = n.SMP
	}
	if cpus == 0 {
		cpus = 1
	}
	mem := n.Memory
	if mem == "" {
		mem = "2G"
	}
	serial := n.SMBIOS.Serial
	if serial == "" {
		serial = DefaultSerial(n.Name)
	}
	args := []string{"qemu-system-x86_64",
		"-name", "guest=" + n.Name,
		"-machine", "q35",
		"-m", mem,
		"-smp", strconv.Itoa(cpus),
		"-nodefaults", "-display", "none", "-vga", "none",
		"-boot", "menu=off,strict=on",
	}
	if o.Accel == AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	smbios := []string{"type=1"}
	for _, kv := range [][2]string{{"manufacturer", n.SMBIOS.Manufacturer}, {"product", n.SMBIOS.Product}, {"serial", serial}} {
		if kv[1] != "" {
			smbios = append(smbios, kv[0]+"="+escapeOpt(kv[1]))
		}
	}
	args = append(args, "-smbios", strings.Join(smbios, ","))
	if n.UEFI {
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+escapeOpt(OVMFCode),
			"-drive", "if=pflash,format=raw,file="+escapeOpt(o.OVMFVars),
			// No TFTP anywhere in the data center: without PXE, OVMF goes
			// straight to UEFI HTTP boot (under TCG the PXEv4 and PXEv6
			// attempts cost minutes).
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	}
	for i, tap := range o.Taps {
		id := fmt.Sprintf("net%d", i)
		args = append(args, "-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, tap))
		dev := fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,bootindex=%d", id, MAC(n.Name, i), i+1)
		if n.UEFI {
			// Let OVMF's own network stack (PXE and HTTP boot) drive the NIC
			// instead of QEMU's iPXE option ROM.
			dev += ",romfile="
		}
		args = append(args, "-device", dev)
	}
	for i, d := range o.Disks {
		if d.Folder {
			fs := fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=none", escapeOpt(d.Path), d.Name)
			if !d.Writable {
				fs += ",readonly=on"
			}
			args = append(args, "-virtfs", fs)
			continue
		}
		cache := d.Cache
		if cache == "" {
			cache = "none"
		}
		args = append(args,
			"-drive", fmt.Sprintf("if=none,id=disk%d,file=%s,format=%s,cache=%s", i, escapeOpt(d.Path), d.Format, cache),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,serial=%s", i, d.Name))
	}
	if o.Ignition != "" {
		args = append(args, "-fw_cfg", "opt/com.coreos/config,file="+escapeOpt(o.Ignition))
	}
	if o.SerialSocket != "" {
		chardev := "socket,id=serial0,path=" + escapeOpt(o.SerialSocket) + ",server=on,wait=off"
		if o.SerialLog != "" {
			chardev += ",logfile=" + escapeOpt(o.SerialLog)
		}
		args = append(args, "-chardev", chardev, "-serial", "chardev:serial0")
	}
	if o.MonitorSocket != "" {
		args = append(args, "-qmp", "unix:"+escapeOpt(o.MonitorSocket)+",server=on,wait=off")
	}
	return args
}

// escapeOpt doubles commas, QEMU's escape inside option values.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
