package nspawn

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/openneco/neco/pkg/vdc/spec"
)

func TestArgs(t *testing.T) {
	n := &spec.NspawnNode{Name: "m1", Hostname: "host1", Binds: []spec.Bind{
		{Source: "/srv/a"}, {Source: "/srv/b", Target: "/b", ReadOnly: true}}}
	args := Args(n, "/r", "/run/netns/x-m1", "/state/m1")
	for _, w := range []string{"--bind=/state/m1/containerd:/var/lib/containerd", "--directory=/r", "--machine=m1", "--hostname=host1", "--boot", "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/x-m1", "--console=read-only", "--system-call-filter=@keyring",
		"--capability=CAP_NET_ADMIN,CAP_SYS_NICE", "--bind=/srv/a:/srv/a", "--bind-ro=/srv/b:/b"} {
		if !slices.Contains(args, w) {
			t.Errorf("missing %s in %v", w, args)
		}
	}
}

// TestArgsContainerdBind: a node's own bind on /var/lib/containerd replaces
// the one on its state directory.
func TestArgsContainerdBind(t *testing.T) {
	n := &spec.NspawnNode{Name: "m1", Binds: []spec.Bind{{Source: "/srv/c", Target: "/var/lib/containerd/"}}}
	args := Args(n, "/r", "/run/netns/x-m1", "/state/m1")
	if slices.Contains(args, "--bind=/state/m1/containerd:/var/lib/containerd") || !slices.Contains(args, "--bind=/srv/c:/var/lib/containerd/") {
		t.Errorf("binds in %v", args)
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

func TestWriteHostKeys(t *testing.T) {
	root := t.TempDir()
	if wrote, err := WriteHostKeys(root, "root@m1"); err != nil || wrote {
		t.Fatalf("without sshd: %v, %v", wrote, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ssh")); err == nil {
		t.Error("keys written into a root without sshd")
	}
	for _, p := range []string{"usr/sbin/sshd", "etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", "etc/ssh/sshd_config"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("tree's\n"), 0o600)
	}
	keys := map[string]string{}
	for range 2 {
		if wrote, err := WriteHostKeys(root, "root@m1"); err != nil || !wrote {
			t.Fatalf("with sshd: %v, %v", wrote, err)
		}
		got, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
		for i := range got {
			got[i] = filepath.Base(got[i])
		}
		if want := []string{"ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"}; !slices.Equal(got, want) {
			t.Fatalf("host key files = %v, want %v", got, want)
		}
		for _, typ := range []string{"ed25519", "ecdsa"} {
			p := filepath.Join(root, "etc/ssh/ssh_host_"+typ+"_key")
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, %v", p, fi.Mode(), err)
			}
			data, _ := os.ReadFile(p)
			signer, err := ssh.ParsePrivateKey(data)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			pubLine, _ := os.ReadFile(p + ".pub")
			pub, comment, _, _, err := ssh.ParseAuthorizedKey(pubLine)
			if err != nil || comment != "root@m1" || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
				t.Errorf("%s.pub = %q, %v: not the private key's, or comment %q", p, pubLine, err, comment)
			}
			if keys[typ] == string(pubLine) {
				t.Errorf("%s: the same key twice", typ)
			}
			keys[typ] = string(pubLine)
			// OpenSSH reads the key too.
			if _, err := exec.LookPath("ssh-keygen"); err == nil {
				if out, err := exec.Command("ssh-keygen", "-y", "-f", p).CombinedOutput(); err != nil || !strings.HasPrefix(string(pubLine), strings.TrimSpace(string(out))) {
					t.Errorf("ssh-keygen -y -f %s: %s, %v", p, out, err)
				}
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config")); string(b) != "tree's\n" {
		t.Error("sshd_config touched")
	}
}

func TestWriteKubernetesNode(t *testing.T) {
	root := t.TempDir()
	for range 2 { // again over its own files (a machine's upper layer)
		if err := WriteKubernetesNode(root); err != nil {
			t.Fatal(err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", KubernetesNodeUnit))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Type=oneshot", "ExecStart=" + KubernetesNodeScript, "Before=containerd.service cke-kubelet.service cke-kube-proxy.service", "WantedBy=sysinit.target"} {
		if !strings.Contains(string(unit), w) {
			t.Errorf("unit lacks %q:\n%s", w, unit)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/sysinit.target.wants", KubernetesNodeUnit)); err != nil || l != "../"+KubernetesNodeUnit {
		t.Errorf("not enabled: %q, %v", l, err)
	}
	script := filepath.Join(root, KubernetesNodeScript)
	fi, err := os.Stat(script)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("script: %v, %v", fi, err)
	}
	if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v: %s", err, out)
	}
	data, _ := os.ReadFile(script)
	if !strings.Contains(string(data), "for kv in kernel/panic=10 kernel/panic_on_oops=1 vm/overcommit_memory=1; do") {
		t.Errorf("script:\n%s", data)
	}
	// It never writes below /proc/sys: only binds over it.
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, ">") && strings.Contains(line, "/proc/sys") {
			t.Errorf("writes to /proc/sys: %s", line)
		}
	}
}
