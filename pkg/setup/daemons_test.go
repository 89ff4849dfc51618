package setup

import (
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/bootserver"
)

func TestDaemonArgs(t *testing.T) {
	p := bootserver.NewPaths("/srv/boot-1")
	me := bootserver.Server{LRN: 1, Address: "127.0.0.2"}
	tests := []struct {
		name string
		want []string
	}{
		{"neco-updater", []string{"-config", "/srv/boot-1/etc/neco/config.yml", "-listen", "127.0.0.2:10090"}},
		{"neco-worker", []string{"-config", "/srv/boot-1/etc/neco/config.yml", "-listen", "127.0.0.2:10091",
			"-rack-file", "/srv/boot-1/etc/neco/rack", "-cluster", "/srv/boot-1/etc/neco/cluster.yml",
			"-sabakan-config", "/srv/boot-1/etc/sabakan/config.yml",
			"-registry-config", "/srv/boot-1/etc/neco-registry/config.yml", "-root", "/srv/boot-1"}},
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
