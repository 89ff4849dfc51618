package setup

import (
	"os"
	"testing"

	"github.com/openneco/neco/pkg/bootserver"
)

func TestWriteHealthAgentDefaults(t *testing.T) {
	p := bootserver.NewPaths(t.TempDir())
	servers := []bootserver.Server{{LRN: 0, Address: "10.69.0.3"}, {LRN: 1, Address: "10.69.0.195"}, {LRN: 2, Address: "10.69.1.131"}}
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
