package vdc

import (
	"strings"
	"testing"
)

func TestCheckInstance(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"vdc", true}, {"t1a2b3", true}, {"a", true},
		{"", false}, {"1abc", false}, {"abcdefg", false}, {"a-b", false}, {"ABC", false},
	}
	for _, tt := range tests {
		if err := CheckInstance(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckInstance(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestNames(t *testing.T) {
	n := Names{Instance: "abcdef", StateRoot: "/var/lib/vdc"}
	tests := []struct {
		name, got, want string
	}{
		{"short network", n.Bridge("core-s1", 0), "abcdef-core-s1"},
		{"long network", n.Bridge("r10-node1", 7), "abcdef-br7"},
		{"clashing network", n.Bridge("v3", 2), "abcdef-br2"},
		{"veth", n.Veth(12), "abcdef-v12"},
		{"tap", n.Tap(0), "abcdef-t0"},
		{"netns", n.Netns("rack0-tor1"), "abcdef-rack0-tor1"},
		{"cgroup", n.CgroupRoot(), "vdc-abcdef"},
		{"host dir", n.HostDir("boot-0"), "/var/lib/vdc/abcdef/hosts/boot-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
			if strings.HasPrefix(tt.name, "veth") || strings.Contains(tt.name, "network") || tt.name == "tap" {
				if len(tt.got) > 15 {
					t.Errorf("link name %q is longer than 15 bytes", tt.got)
				}
			}
		})
	}
}

func TestParseProtocols(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     14:01:02.123  
bfd1       BFD        ---        up     14:01:02.123  
kernel1    Kernel     master4    up     14:01:02.123  
spine1     BGP        ---        up     14:01:06.456  Established   
spine2     BGP        ---        start  14:01:02.123  Active        Socket: Connection refused
nodes      BGP        ---        start  14:01:02.123  Passive
node1      BGP        ---        up     14:01:09.000  Established   
`
	got := ParseProtocols("tor", out)
	want := []BGPSession{
		{Router: "tor", Name: "spine1", State: "up", Info: "Established"},
		{Router: "tor", Name: "spine2", State: "start", Info: "Active Socket: Connection refused"},
		{Router: "tor", Name: "node1", State: "up", Info: "Established"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("session %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[0].Established() || got[1].Established() {
		t.Error("Established() wrong")
	}
}

func TestLedgerTornLine(t *testing.T) {
	dir := t.TempDir()
	l, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{{Kind: EntryNetns, Name: "x-a"}, {Kind: EntryLink, Name: "x-v0"}} {
		if err := l.record(e); err != nil {
			t.Fatal(err)
		}
	}
	l.f.WriteString(`{"kind":"bri`) // a crash mid-write
	l.close()
	got, err := readLedger(dir)
	if err != nil || len(got) != 2 || got[1].Name != "x-v0" {
		t.Fatalf("readLedger = %+v, %v", got, err)
	}
	if got, err := readLedger(t.TempDir()); err != nil || got != nil {
		t.Errorf("missing ledger = %+v, %v", got, err)
	}
}

func FuzzParseProtocols(f *testing.F) {
	f.Add("Name Proto Table State Since Info\nspine1 BGP --- up 14:01:06.456 Established\n")
	f.Add("nodes BGP --- start 14:01:02.123 Passive\n")
	f.Fuzz(func(t *testing.T, in string) {
		for _, s := range ParseProtocols("r", in) {
			if s.Router != "r" || s.Name == "" || s.State == "" {
				t.Fatalf("bad session %+v from %q", s, in)
			}
			if s.State == "start" && s.Info == "Passive" {
				t.Fatalf("listener reported as a session: %q", in)
			}
		}
	})
}
