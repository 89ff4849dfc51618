package sabakan

import (
	"errors"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/cke"
)

func TestParseTemplate(t *testing.T) {
	const good = `
name: dc
service_subnet: 10.68.0.0/16
nodes:
- user: cybozu
  control_plane: true
  labels: {cke.cybozu.com/role: cs}
- user: cybozu
  labels: {cke.cybozu.com/role: cs}
- user: cybozu
  labels: {cke.cybozu.com/role: ss}
  taints: [{key: cke.cybozu.com/role, value: storage, effect: NoExecute}]
`
	if _, err := ParseTemplate([]byte(good)); err != nil {
		t.Fatalf("good template: %v", err)
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"an address", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: u, control_plane: true, address: 10.0.0.1}\n- {user: u}\n",
			[]string{`nodes[0].address "10.0.0.1": a template has none`}},
		{"a hostname", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: u, control_plane: true}\n- {user: u, hostname: w}\n",
			[]string{`nodes[1].hostname "w"`}},
		{"no control plane, no worker", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes: []\n",
			[]string{"0 control-plane templates, want exactly 1", "no worker template"}},
		{"two control planes", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: u, control_plane: true}\n- {user: u, control_plane: true}\n- {user: u}\n",
			[]string{"2 control-plane templates"}},
		{"two workers of one role", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: u, control_plane: true}\n- {user: u, labels: {cke.cybozu.com/role: cs}}\n- {user: u, labels: {cke.cybozu.com/role: cs}}\n",
			[]string{`worker template for role "cs" again (also nodes[1])`}},
		{"several workers, one without role", "name: dc\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: u, control_plane: true}\n- {user: u}\n- {user: u, labels: {cke.cybozu.com/role: cs}}\n",
			[]string{"each needs a cke.cybozu.com/role label"}},
		{"the cluster part", "name: DC\nservice_subnet: 10.68.0.0/33\nnodes:\n- {control_plane: true}\n- {user: u}\n",
			[]string{`name "DC"`, "service_subnet", "nodes[0].user: required"}},
		{"unknown field", "name: dc\nservice_subnet: 10.68.0.0/16\nnode: []\n", []string{`unknown field "node"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTemplate([]byte(tt.yaml))
			if !errors.Is(err, cke.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
