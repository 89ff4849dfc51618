package setup

import (
	"os"
	"slices"
	"testing"
)

func TestWriteHealthAgentDefaults(t *testing.T) {
	p := NewPaths(t.TempDir())
	servers := []Server{{LRN: 0, Address: "10.69.0.3"}, {LRN: 1, Address: "10.69.0.195"}, {LRN: 2, Address: "10.69.1.131"}}
	if err := WriteHealthAgentDefaults(servers[1], servers, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p.HealthAgentDefaults)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by neco setup (or neco join): node-health-agent of boot server 1.\n" +
		`NODE_HEALTH_AGENT_OPTS="-advertise 10.69.0.195:7946 -join 10.69.0.3,10.69.1.131"` + "\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonArgs(t *testing.T) {
	p := NewPaths("/srv/boot-1")
	me := Server{LRN: 1, Address: "127.0.0.2"}
	tests := []struct {
		name string
		want []string
	}{
		{"neco-updater", []string{"-config", "/srv/boot-1/etc/neco/config.yml", "-listen", "127.0.0.2:10090"}},
		{"neco-worker", []string{"-config", "/srv/boot-1/etc/neco/config.yml", "-listen", "127.0.0.2:10091",
			"-rack-file", "/srv/boot-1/etc/neco/rack", "-cluster", "/srv/boot-1/etc/neco/cluster.yml",
			"-sabakan-config", "/srv/boot-1/etc/sabakan/config.yml", "-root", "/srv/boot-1"}},
		{"node-health-agent", []string{"-bind", "127.0.0.2:7946", "-listen", "127.0.0.2:7947"}},
		{"sabakan-state-setter", []string{"-config", "/srv/boot-1/etc/neco/config.yml", "-members-url", "http://127.0.0.2:7947",
			"-sabakan-url", "http://127.0.0.2:10080", "-metrics", "127.0.0.2:10083"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := daemonArgs(tt.name, p, me); !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheckLeave(t *testing.T) {
	tests := []struct {
		name           string
		members        int
		alive, force   bool
		wantRefusedErr bool
	}{
		{"four members, up", 4, true, false, false},
		{"three members, up", 3, true, false, true},
		{"three members, up, forced", 3, true, true, false},
		{"three members, down", 3, false, false, false},
		{"not a member", 0, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLeave(2, tt.members, tt.alive, tt.force)
			if (err != nil) != tt.wantRefusedErr {
				t.Fatalf("CheckLeave = %v, want refused %v", err, tt.wantRefusedErr)
			}
		})
	}
}
