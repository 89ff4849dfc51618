package firstboot

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/sabakan"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc5Z3eP1mWq7P3e4Yc1m8Lh0pDk9RkR3p3jzJm3oJ7B op@example"

func u(n uint) *uint { return &n }

func TestParseCmdline(t *testing.T) {
	s, err := ParseCmdline("BOOT_IMAGE=/vmlinuz root=PARTUUID=x ro neco.rack=2 neco.index=4 neco.serial=ABC neco.hostname=b2 quiet\n")
	if err != nil {
		t.Fatal(err)
	}
	if *s.Rack != 2 || *s.Index != 4 || s.Serial != "ABC" || s.Hostname != "b2" {
		t.Errorf("got %+v", s)
	}
	for _, bad := range []string{"neco.rack=x", "neco.rack=-1", "neco.rack=70000", "neco.racks=1", "neco.index="} {
		if _, err := ParseCmdline(bad); !errors.Is(err, ErrInvalidSeed) {
			t.Errorf("%q: err %v, want ErrInvalidSeed", bad, err)
		}
	}
	if s, err := ParseCmdline("quiet necoish=1"); err != nil || s.Rack != nil {
		t.Errorf("no neco parameters: %+v %v", s, err)
	}
}

func TestParseSeedFile(t *testing.T) {
	s, err := ParseSeedFile([]byte("rack: 1\nindex-in-rack: 5\nssh-authorized-keys: [\"" + key + "\"]\n"))
	if err != nil || *s.Rack != 1 || *s.Index != 5 || len(s.SSHAuthorizedKeys) != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"rack: one\n", "rak: 1\n", "rack: -1\n", "[1, 2]\n", "rack: 1\nrack: 2\n", "\x00\x01"} {
		if _, err := ParseSeedFile([]byte(bad)); !errors.Is(err, ErrInvalidSeed) {
			t.Errorf("%q: err %v, want ErrInvalidSeed", bad, err)
		}
	}
	if s, err := ParseSeedFile([]byte("  \n")); err != nil || s.Rack != nil {
		t.Errorf("empty: %+v %v", s, err)
	}
}

func TestResolve(t *testing.T) {
	ipam := *sabakan.ReferenceIPAM()
	id, err := Resolve(Seed{Rack: u(1)}, "SN1\n", ipam)
	if err != nil {
		t.Fatal(err)
	}
	spec := id.Source.Machine.Spec
	if spec.Serial != "SN1" || spec.Rack != 1 || spec.IndexInRack != ipam.NodeIndexOffset || spec.Role != sabakan.RoleBoot || id.Hostname != "boot-1" {
		t.Errorf("got %+v %s", spec, id.Hostname)
	}
	if want := ipam.NodeAddresses(1, ipam.NodeIndexOffset)[0].String(); id.Node != want {
		t.Errorf("node %s, want %s", id.Node, want)
	}
	cases := map[string]struct {
		seed   Seed
		smbios string
		want   string
	}{
		"no rack":           {Seed{}, "SN", "no rack"},
		"no serial":         {Seed{Rack: u(0)}, " \n", "no serial"},
		"bad serial":        {Seed{Rack: u(0), Serial: "a/b"}, "", "serial"},
		"rack out of pool":  {Seed{Rack: u(4000)}, "SN", "SN"},
		"index beyond rack": {Seed{Rack: u(0), Index: u(ipam.MaxNodesInRack + ipam.NodeIndexOffset + 1)}, "SN", "SN"},
		"bad hostname":      {Seed{Rack: u(0), Hostname: "Boot_0"}, "SN", "hostname"},
		"key with options":  {Seed{Rack: u(0), SSHAuthorizedKeys: []string{`command="x" ` + key}}, "SN", "ssh-authorized-keys[0]"},
		"not a key":         {Seed{Rack: u(0), SSHAuthorizedKeys: []string{"hello"}}, "SN", "ssh-authorized-keys[0]"},
	}
	for name, c := range cases {
		_, err := Resolve(c.seed, c.smbios, ipam)
		if !errors.Is(err, ErrInvalidSeed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want ErrInvalidSeed mentioning %q", name, err, c.want)
		}
	}
}

// tree lays out an installed server's files under a directory.
func tree(t *testing.T, seed, cmdline, serial string) Paths {
	t.Helper()
	d := t.TempDir()
	p := Default()
	for _, f := range []*string{&p.SeedFile, &p.Cmdline, &p.SMBIOSSerial, &p.IPAM, &p.Identity, &p.Hostname, &p.AuthorizedKeys} {
		*f = filepath.Join(d, *f)
	}
	ipam, _ := json.Marshal(sabakan.ReferenceIPAM())
	for path, data := range map[string]string{p.IPAM: string(ipam), p.Cmdline: cmdline, p.SMBIOSSerial: serial, p.Hostname: "localhost\n"} {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Dir(p.AuthorizedKeys), 0o700)
	if seed != "" {
		os.MkdirAll(filepath.Dir(p.SeedFile), 0o755)
		if err := os.WriteFile(p.SeedFile, []byte(seed), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// snapshot reads every file under the tree's root.
func snapshot(t *testing.T, p Paths) map[string]string {
	root := strings.TrimSuffix(p.IPAM, Default().IPAM)
	m := map[string]string{}
	filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			m[strings.TrimPrefix(path, root)] = string(b)
		}
		return nil
	})
	return m
}

func TestApply(t *testing.T) {
	p := tree(t, "rack: 2\nssh-authorized-keys:\n  - "+key+"\n", "ro neco.index=5", "QEMU-SN\n")
	r, err := Apply(p)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Applied || r.Rack != 2 || r.Index != 5 || r.Serial != "QEMU-SN" || r.Hostname != "boot-2" || r.Warning != "" {
		t.Errorf("first boot: %+v", r)
	}
	host, _ := os.ReadFile(p.Hostname)
	keys, _ := os.ReadFile(p.AuthorizedKeys)
	if string(host) != "boot-2\n" || string(keys) != key+"\n" {
		t.Errorf("hostname %q, keys %q", host, keys)
	}
	data, err := os.ReadFile(p.Identity)
	if err != nil {
		t.Fatal(err)
	}
	src, err := ParseIdentityFile(data)
	if err != nil || src.Machine.Spec.Serial != "QEMU-SN" || src.Machine.Spec.IndexInRack != 5 {
		t.Fatalf("identity file: %+v %v", src, err)
	}
	before := snapshot(t, p)

	// Second boot, same seed: kept, nothing changes.
	r, err = Apply(p)
	if err != nil || r.Applied || r.Warning != "" || r.Rack != 2 || r.Node != "10.69.1.5" && r.Node == "" {
		t.Errorf("second boot: %+v %v", r, err)
	}
	// A changed seed, then a broken one: a warning, the identity stays.
	os.WriteFile(p.SeedFile, []byte("rack: 1\n"), 0o600)
	if r, err = Apply(p); err != nil || r.Applied || !strings.Contains(r.Warning, "rack 1") || r.Rack != 2 {
		t.Errorf("changed seed: %+v %v", r, err)
	}
	os.WriteFile(p.SeedFile, []byte("rack: [\n"), 0o600)
	if r, err = Apply(p); err != nil || r.Applied || !strings.Contains(r.Warning, "cannot be read") {
		t.Errorf("broken seed: %+v %v", r, err)
	}
	after := snapshot(t, p)
	delete(before, strings.TrimPrefix(p.SeedFile, strings.TrimSuffix(p.IPAM, Default().IPAM)))
	delete(after, strings.TrimPrefix(p.SeedFile, strings.TrimSuffix(p.IPAM, Default().IPAM)))
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed on a later boot", k)
		}
	}
}

func TestApplyInvalidWritesNothing(t *testing.T) {
	for name, c := range map[string]struct{ seed, cmdline, serial string }{
		"malformed file":      {"rack: [\n", "", "SN"},
		"unknown key":         {"rack: 1\nrak: 2\n", "", "SN"},
		"no seed":             {"", "ro quiet", "SN"},
		"no serial":           {"rack: 1\n", "", ""},
		"bad cmdline":         {"rack: 1\n", "neco.rack=x", "SN"},
		"rack outside IPAM":   {"rack: 999\n", "", "SN"},
		"bad key":             {"rack: 1\nssh-authorized-keys: [nope]\n", "", "SN"},
		"cmdline unknown key": {"", "neco.rack=1 neco.foo=2", "SN"},
	} {
		p := tree(t, c.seed, c.cmdline, c.serial)
		before := snapshot(t, p)
		_, err := Apply(p)
		if !errors.Is(err, ErrInvalidSeed) {
			t.Errorf("%s: err %v, want ErrInvalidSeed", name, err)
		}
		after := snapshot(t, p)
		if len(after) != len(before) {
			t.Errorf("%s: files %d before, %d after", name, len(before), len(after))
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s: %s changed", name, k)
			}
		}
	}
}

func FuzzSeed(f *testing.F) {
	f.Add("rack: 1\n", "neco.rack=2", "SN")
	f.Add("rack: 0\nindex-in-rack: 3\nserial: X\nhostname: b\nssh-authorized-keys: [\""+key+"\"]\n", "", "")
	f.Add("{}", "neco.index=99999999999", "a b")
	ipam := *sabakan.ReferenceIPAM()
	f.Fuzz(func(t *testing.T, file, cmdline, serial string) {
		a, err := ParseSeedFile([]byte(file))
		if err != nil {
			return
		}
		b, err := ParseCmdline(cmdline)
		if err != nil {
			return
		}
		id, err := Resolve(Merge(a, b), serial, ipam)
		if err != nil {
			if !errors.Is(err, ErrInvalidSeed) {
				t.Fatalf("error not ErrInvalidSeed: %v", err)
			}
			return
		}
		if _, err := ParseIdentityFile(id.IdentityFile()); err != nil {
			t.Fatalf("the identity file does not read back: %v", err)
		}
		if !sabakan.IsValidSerial(id.Source.Machine.Spec.Serial) || !reHostname.MatchString(id.Hostname) {
			t.Fatalf("resolved an invalid identity %+v", id)
		}
	})
}
