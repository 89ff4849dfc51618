package bootserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterResolve(t *testing.T) {
	def := &Cluster{}
	def.FillDefaults()
	explicit := &Cluster{Servers: []Server{{0, "127.1.1.1"}, {1, "127.1.1.2"}, {2, "127.1.1.2"}}}
	explicit.FillDefaults()
	for _, tt := range []struct {
		name  string
		c     *Cluster
		lrns  []int
		want  []string
		error string
	}{
		{"reference plan", def, []int{2, 0, 1}, []string{"10.69.0.3", "10.69.0.195", "10.69.1.131"}, ""},
		{"too few", def, []int{0, 1}, nil, "at least 3"},
		{"duplicate", def, []int{0, 1, 1}, nil, "given twice"},
		{"outside the pool", def, []int{0, 1, 99}, nil, "outside the address pools"},
		{"shared address", explicit, []int{0, 1, 2}, nil, "share address"},
		{"not described", explicit, []int{0, 1, 3}, nil, "not in the cluster description"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Resolve(tt.lrns, MinServers)
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("got %v, want %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range got {
				if s.Address != tt.want[i] || s.LRN != i {
					t.Errorf("server %d: %+v, want %s", i, s, tt.want[i])
				}
			}
		})
	}
}

func TestLoadCluster(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yml")
	os.WriteFile(p, []byte("servers:\n- lrn: 0\n  address: 127.0.0.1\n- lrn: 0\n  address: 127.0.0.2\n"), 0o644)
	if _, err := LoadCluster(p, false); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("duplicate LRN in the description: %v", err)
	}
	os.WriteFile(p, []byte("servers: []\nunknown: 1\n"), 0o644)
	if _, err := LoadCluster(p, false); err == nil {
		t.Fatal("unknown key accepted")
	}
	c, err := LoadCluster(filepath.Join(dir, "absent"), true)
	if err != nil || c.EtcdClientPort != 2379 || c.IPAM == nil {
		t.Fatalf("default description: %+v %v", c, err)
	}
}
