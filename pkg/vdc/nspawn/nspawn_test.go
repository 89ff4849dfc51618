package nspawn

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/vdc/spec"
)

func TestArgs(t *testing.T) {
	n := &spec.NspawnNode{Name: "m1", Hostname: "host1", Binds: []spec.Bind{
		{Source: "/srv/a"}, {Source: "/srv/b", Target: "/b", ReadOnly: true}}}
	args := Args(n, "/r", "/run/netns/x-m1")
	for _, w := range []string{"--directory=/r", "--machine=m1", "--hostname=host1", "--boot", "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/x-m1", "--console=read-only", "--system-call-filter=@keyring",
		"--capability=CAP_NET_ADMIN,CAP_SYS_NICE", "--bind=/srv/a:/srv/a", "--bind-ro=/srv/b:/b"} {
		if !slices.Contains(args, w) {
			t.Errorf("missing %s in %v", w, args)
		}
	}
}

func TestEnterArgs(t *testing.T) {
	got := EnterArgs(42, []string{"ip", "a"})
	if got[0] != "nsenter" || got[1] != "--target=42" || got[2] != "--all" || !slices.Equal(got[len(got)-2:], []string{"ip", "a"}) {
		t.Errorf("EnterArgs = %v", got)
	}
}

func TestWriteIdentity(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("/nonexistent", filepath.Join(root, "etc/hostname"))
	n := &spec.NspawnNode{Name: "m1", Hostname: "m1", SMBIOS: spec.SMBIOS{Serial: "s-1"}}
	if err := WriteIdentity(root, n, "0123"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"etc/hostname": "m1\n", "etc/machine-id": "0123\n", "etc/vdc/serial": "s-1\n"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", p, b, err)
		}
	}
}
