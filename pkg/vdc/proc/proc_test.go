package proc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name           string
		mountinfo      string
		tracking, rest Hierarchies
	}{
		{
			name: "hybrid, every controller on v1",
			mountinfo: `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`,
			tracking: Hierarchies{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"},
			rest:     Hierarchies{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/memory"},
		},
		{
			name: "combined controllers, a second mount of one hierarchy",
			mountinfo: `25 24 0:22 / /sys/fs/cgroup/systemd rw shared:5 - cgroup cgroup rw,xattr,name=systemd
27 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw shared:7 - cgroup cgroup rw,cpu,cpuacct
28 24 0:25 / /sys/fs/cgroup/net_cls,net_prio rw shared:8 - cgroup cgroup rw,net_cls,net_prio
29 24 0:26 / /sys/fs/cgroup/pids rw shared:9 - cgroup cgroup rw,pids
90 80 0:24 / /var/lib/x/cpu rw - cgroup cgroup rw,cpu,cpuacct
`,
			tracking: Hierarchies{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd"},
			rest:     Hierarchies{"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/net_cls,net_prio"},
		},
		{
			name:      "pure v2",
			mountinfo: "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
			tracking:  Hierarchies{"/sys/fs/cgroup"},
		},
		{name: "none", mountinfo: "22 1 8:1 / / rw - ext4 /dev/vda rw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracking, rest, err := parseMountinfo(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tracking, tt.tracking) || !slices.Equal(rest, tt.rest) {
				t.Errorf("got %v and %v, want %v and %v", tracking, rest, tt.tracking, tt.rest)
			}
		})
	}
}

// TestCreateCpuset: every level a group makes in a v1 cpuset hierarchy
// gets its parent's CPUs and memory nodes; levels that have some keep them;
// other hierarchies get directories only. (Files stand in for cgroupfs.)
func TestCreateCpuset(t *testing.T) {
	cpuset, pids := t.TempDir(), t.TempDir()
	write := func(p, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cpuset, "cpuset.cpus"), "0-3\n")
	write(filepath.Join(cpuset, "cpuset.mems"), "0\n")
	write(filepath.Join(cpuset, "vdc-a/cpuset.cpus"), "1\n") // made earlier, narrowed by someone
	g := Group{H: Hierarchies{pids, cpuset}, Path: "vdc-a/m1"}
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"vdc-a/cpuset.cpus": "1\n", "vdc-a/cpuset.mems": "0\n",
		"vdc-a/m1/cpuset.cpus": "1\n", "vdc-a/m1/cpuset.mems": "0\n",
	} {
		if b, err := os.ReadFile(filepath.Join(cpuset, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(pids, "vdc-a/m1")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(pids, "vdc-a/m1/cpuset.cpus")); err == nil {
		t.Error("cpuset files written outside the cpuset hierarchy")
	}
	if !g.Exists() {
		t.Error("group does not exist")
	}
}
