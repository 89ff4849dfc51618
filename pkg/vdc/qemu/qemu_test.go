package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/vdc/spec"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name    string
		node    spec.Node
		opts    Options
		want    []string // each must appear as one argument
		notWant []string
	}{
		{
			name: "uefi tcg with taps and a raw disk",
			node: spec.Node{Name: "vm1", CPU: 2, Memory: "4G", UEFI: true, SMBIOS: spec.SMBIOS{Manufacturer: "acme", Serial: "abc"}},
			opts: Options{Accel: AccelTCG, Taps: []string{"x-t0", "x-t1"}, OVMFVars: "/s/vars.fd",
				Disks: []Disk{{Name: "data", Path: "/s/data.img", Format: "qcow2"}}, SerialSocket: "/s/serial.sock", SerialLog: "/s/console.log"},
			want: []string{"tcg,thread=multi", "max", "4G", "2", "type=1,manufacturer=acme,serial=abc",
				"if=pflash,format=raw,readonly=on,file=" + OVMFCode, "if=pflash,format=raw,file=/s/vars.fd",
				"name=opt/org.tianocore/IPv4PXESupport,string=n", "name=opt/org.tianocore/IPv6PXESupport,string=n",
				"tap,id=net1,ifname=x-t1,script=no,downscript=no",
				"virtio-net-pci,netdev=net0,mac=" + MAC("vm1", 0) + ",bootindex=1,romfile=",
				"if=none,id=disk0,file=/s/data.img,format=qcow2,cache=none",
				"socket,id=serial0,path=/s/serial.sock,server=on,wait=off,logfile=/s/console.log"},
			notWant: []string{"kvm", "host"},
		},
		{
			name: "bios kvm defaults",
			node: spec.Node{Name: "vm2"},
			opts: Options{Accel: AccelKVM, Taps: []string{"x-t2"}},
			want: []string{"kvm", "host", "2G", "1", "type=1,serial=" + DefaultSerial("vm2"),
				"virtio-net-pci,netdev=net0,mac=" + MAC("vm2", 0) + ",bootindex=1"},
			notWant: []string{"tcg,thread=multi", "name=opt/org.tianocore/IPv4PXESupport,string=n"},
		},
		{
			name: "commas escaped, folders, ignition",
			node: spec.Node{Name: "vm3", SMBIOS: spec.SMBIOS{Product: "a,b"}},
			opts: Options{Disks: []Disk{{Name: "share", Path: "/srv/x", Folder: true}}, Ignition: "/s/i,gn"},
			want: []string{"type=1,product=a,,b,serial=" + DefaultSerial("vm3"),
				"local,path=/srv/x,mount_tag=share,security_model=none,readonly=on", "opt/com.coreos/config,file=/s/i,,gn"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := Args(&tt.node, tt.opts)
			if args[0] != "qemu-system-x86_64" {
				t.Errorf("program = %s", args[0])
			}
			for _, w := range tt.want {
				if !slices.Contains(args, w) {
					t.Errorf("missing %q in %s", w, strings.Join(args, " "))
				}
			}
			for _, w := range tt.notWant {
				if slices.Contains(args, w) {
					t.Errorf("unexpected %q in %s", w, strings.Join(args, " "))
				}
			}
		})
	}
}

func TestChooseAccel(t *testing.T) {
	t.Setenv("VDC_ACCEL", "")
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{{"", AccelTCG, true}, {"auto", AccelTCG, true}, {"kvm", AccelKVM, true}, {"tcg", AccelTCG, true}, {"hvf", "", false}} {
		got, err := ChooseAccel(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ChooseAccel(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestIdentity(t *testing.T) {
	if DefaultSerial("a") == DefaultSerial("b") || len(DefaultSerial("a")) != 40 {
		t.Error("DefaultSerial is not a distinct SHA-1 hex")
	}
	m := MAC("vm1", 0)
	if !strings.HasPrefix(m, "52:54:") || len(m) != 17 || m == MAC("vm1", 1) || m != MAC("vm1", 0) {
		t.Errorf("MAC = %s", m)
	}
}
