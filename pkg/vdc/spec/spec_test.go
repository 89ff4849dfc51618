package spec

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	f, err := os.Open("testdata/reference.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Networks); got != 4 {
		t.Errorf("networks = %d, want 4", got)
	}
	if c.Networks[1].Type != NetworkInternal {
		t.Errorf("default network type = %q, want internal", c.Networks[1].Type)
	}
	tor := c.Namespaces[1]
	if tor.Name != "rack0-tor1" || len(tor.Interfaces) != 2 || tor.Interfaces[1].Addresses[0] != "10.69.0.65/26" {
		t.Errorf("tor = %+v", tor)
	}
	if got := tor.Apps[1].Command[1]; got != "--keep-in-foreground" {
		t.Errorf("app command = %q", got)
	}
	n := c.Nodes[0]
	if n.SMBIOS.Serial != "fb8f2417d0b4db30050719c31ce02a2e8141bbd8" || !n.UEFI || n.CPU != 2 || n.NetworkDeviceQueue != 4 {
		t.Errorf("node = %+v", n)
	}
	if len(n.Volumes) != 4 || !n.Volumes[0].CopyOnWrite || n.Volumes[2].DeviceClass != "ssd" || !n.Volumes[3].Writable {
		t.Errorf("volumes = %+v", n.Volumes)
	}
	if c.Rootfses[0].Suite != "bookworm" || c.Rootfses[0].Variant != "minbase" {
		t.Errorf("rootfs defaults not filled: %+v", c.Rootfses[0])
	}
	if c.NspawnNodes[0].Hostname != "rack0-cs1" {
		t.Errorf("hostname default = %q", c.NspawnNodes[0].Hostname)
	}

	// Marshal then Parse gives the same cluster.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\n%+v\n%+v", c, c2)
	}
}

const base = `
kind: Network
name: net0
---
kind: Rootfs
name: fs
---
kind: Image
name: img
url: http://example.invalid/img
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // substring of the error; "" means valid
	}{
		{"minimal valid", "", ""},
		{"unknown kind", "kind: Pod\nname: x", `unknown kind "Pod"`},
		{"missing kind", "name: x", "missing kind"},
		{"not a mapping", "- a\n- b", "not a YAML mapping"},
		{"unknown field", "kind: Network\nname: n1\nspeed: 10", `unknown field "speed"`},
		{"long network name", "kind: Network\nname: abcdefghijklmnop", "want 1-15"},
		{"upper-case name", "kind: Network\nname: Net", "want 1-15"},
		{"duplicate network", "kind: Network\nname: net0", "defined twice"},
		{"nat refused", "kind: Network\nname: n1\ntype: external\nuse-nat: true\naddress: 10.0.0.1/24", "use-nat is refused"},
		{"internal with address", "kind: Network\nname: n1\naddress: 10.0.0.1/24", "no host address"},
		{"external without address", "kind: Network\nname: n1\ntype: external", "needs an address"},
		{"bad network type", "kind: Network\nname: n1\ntype: wan", `type "wan"`},
		{"unknown network ref", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: nope}]", `Network "nope" is not defined`},
		{"bad address", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, addresses: [10.0.0.1]}]", "prefix length"},
		{"network address", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, addresses: [10.0.0.0/24]}]", "network address"},
		{"app without command", "kind: NetworkNamespace\nname: r\napps: [{name: bird}]", "has no command"},
		{"duplicate app", "kind: NetworkNamespace\nname: r\napps: [{name: a, command: [x]}, {name: a, command: [y]}]", "app a is defined twice"},
		{"host name clash", "kind: NetworkNamespace\nname: h\n---\nkind: NspawnNode\nname: h\nrootfs: fs", "already used by a NetworkNamespace"},
		{"unknown rootfs", "kind: NspawnNode\nname: m\nrootfs: nope", `Rootfs "nope" is not defined`},
		{"bad package", "kind: Rootfs\nname: fs2\npackages: ['rm -rf']", "not a Debian package name"},
		{"bad mirror", "kind: Rootfs\nname: fs2\nmirror: ftp://x", "want an http(s) or file URL"},
		{"bad serial", "kind: NspawnNode\nname: m\nrootfs: fs\nsmbios: {serial: 'a/b'}", "smbios serial"},
		{"duplicate serial", "kind: NspawnNode\nname: m\nrootfs: fs\nsmbios: {serial: s1}\n---\nkind: Node\nname: q\nsmbios: {serial: s1}", "already used by q"},
		{"relative bind", "kind: NspawnNode\nname: m\nrootfs: fs\nbinds: [{source: rel}]", "must be absolute"},
		{"image url and file", "kind: Image\nname: i2\nurl: http://x\nfile: y", "exactly one of url and file"},
		{"bad compression", "kind: Image\nname: i2\nfile: y\ncompression: xz", `compression "xz"`},
		{"node bad memory", "kind: Node\nname: q\nmemory: lots", "memory"},
		{"node unknown image", "kind: Node\nname: q\nvolumes: [{kind: image, name: root, image: nope}]", `Image "nope" is not defined`},
		{"node raw without size", "kind: Node\nname: q\nvolumes: [{kind: raw, name: d}]", "size"},
		{"node bad volume kind", "kind: Node\nname: q\nvolumes: [{kind: vvfat, name: d}]", `kind "vvfat"`},
		{"node unknown class", "kind: Node\nname: q\nvolumes: [{kind: raw, name: d, size: 1G, device-class: hdd}]", `DeviceClass "hdd"`},
		{"node valid", "kind: Node\nname: q\ninterfaces: [net0]\nmemory: 1G\nvolumes: [{kind: image, name: root, image: img}, {kind: raw, name: d, size: 1G}]", ""},
		{"named interfaces", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, name: nodes}, {network: net0}]", ""},
		{"bad interface name", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, name: 'a b'}]", "interface name"},
		{"long interface name", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, name: abcdefghijklmnop}]", "interface name"},
		{"interface name twice", "kind: NetworkNamespace\nname: r\ninterfaces: [{network: net0, name: eth1}, {network: net0}]", "used twice"},
		{"interface named lo", "kind: NspawnNode\nname: m\nrootfs: fs\ninterfaces: [{network: net0, name: lo}]", "used twice"},
		{"separator with comment", "--- # next\nkind: Network\nname: n2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(base + "---\n" + tt.doc))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"4G", 4 << 30, true}, {"512M", 512 << 20, true}, {"1k", 1 << 10, true}, {"100", 100, true},
		{"2T", 2 << 40, true}, {"", 0, false}, {"G", 0, false}, {"0", 0, false}, {"-1G", 0, false},
		{"1.5G", 0, false}, {"99999999999T", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	ref, _ := os.ReadFile("testdata/reference.yml")
	f.Add(string(ref))
	f.Add(base)
	f.Add("---\n---\nkind: Node\nname: q\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// A valid cluster survives a round trip.
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(bytes.NewReader(out)); err != nil {
			t.Fatalf("re-parse of valid cluster failed: %v\n%s", err, out)
		}
	})
}
