package nspawn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// WriteHostKeys gives the machine whose root is root SSH host keys of its
// own, if the root has sshd: every machine of a tree would otherwise offer
// the keys debootstrap made for the tree, and a client pinning host keys
// could not tell the machines apart. The tree's keys are removed (in the
// machine's overlay) and an ed25519 and an ECDSA P-256 key are written in
// OpenSSH's format; sshd skips the default RSA key, which is missing.
// comment ends each key ("root@<hostname>"). It reports whether it wrote
// keys.
func WriteHostKeys(root, comment string) (bool, error) {
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/sshd")); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	dir := filepath.Join(root, "etc/ssh")
	old, err := filepath.Glob(filepath.Join(dir, "ssh_host_*"))
	if err != nil {
		return false, err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return false, fmt.Errorf("nspawn: %w", err)
		}
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("nspawn: %w", err)
	}
	for name, key := range map[string]crypto.Signer{"ssh_host_ed25519_key": ed, "ssh_host_ecdsa_key": ec} {
		if err := writeHostKey(filepath.Join(dir, name), key, comment); err != nil {
			return false, err
		}
	}
	return true, nil
}

func writeHostKey(path string, key crypto.Signer, comment string) error {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return fmt.Errorf("nspawn: host key: %w", err)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("nspawn: host key: %w", err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment + "\n"
	// sshd refuses a private key others can read.
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("nspawn: %w", err)
	}
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return fmt.Errorf("nspawn: %w", err)
	}
	return nil
}

// KubernetesNodeUnit is the oneshot unit every machine runs early at boot
// (sysinit), before containerd and any kubelet or kube-proxy unit, so that
// they find what a systemd-nspawn machine lacks on a host with cgroup v1
// controllers. It runs KubernetesNodeScript.
const KubernetesNodeUnit = "vdc-kubernetes-node.service"

// KubernetesNodeScript is the unit's program in the machine.
const KubernetesNodeScript = "/usr/local/sbin/vdc-kubernetes-node"

// KubernetesNodeSysctls are the values kubelet wants of host-wide kernel
// settings, which a machine shows it in files of its own (KubernetesNodeScript).
var KubernetesNodeSysctls = map[string]string{
	"kernel/panic":         "10",
	"kernel/panic_on_oops": "1",
	"vm/overcommit_memory": "1",
}

const kubernetesNodeUnit = `[Unit]
Description=vdc: what a kubelet needs in this nspawn machine (writable cgroups, /dev/kmsg, its sysctls)
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target shutdown.target
Before=containerd.service cke-kubelet.service cke-kube-proxy.service kubelet.service kube-proxy.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + KubernetesNodeScript + `

[Install]
WantedBy=sysinit.target
`

const kubernetesNodeScript = `#!/bin/sh
# Written by vdc (pkg/vdc/nspawn) into every nspawn machine and run once at
# boot by ` + KubernetesNodeUnit + `: what containerd, runc and a kubelet
# need in a systemd-nspawn machine on a host with cgroup v1 controllers.
set -eu

# 1. nspawn mounts the v1 controllers read-only; runc and kubelet make
#    cgroups in them. The machine's cgroup namespace is rooted at its own
#    cgroup in every hierarchy (vdc starts it there), so this opens nothing
#    but the machine's own subtree. name=systemd and unified are systemd's.
#    A hierarchy's real root (it has release_agent, which the kernel runs
#    on the host) means the machine was not placed so: it stays read-only.
for d in /sys/fs/cgroup/*; do
	case ${d##*/} in systemd | unified) continue ;; esac
	mountpoint -q "$d" || continue
	if [ -e "$d/release_agent" ]; then
		echo "$d is a root cgroup of the host: left read-only" >&2
		exit 1
	fi
	mount -o remount,bind,rw "$d"
done

# 2. kubelet will not start without /dev/kmsg (its OOM watcher reads it),
#    which nspawn does not provide. With /dev/null the watcher ends at once;
#    the runtime still reports OOM kills (OOMKilled).
[ -e /dev/kmsg ] || ln -sf /dev/null /dev/kmsg

# 3. kubelet sets these sysctls, which are not namespaced: they are the
#    host's, read-only here. Files of the machine's own, bound over them,
#    show kubelet the values it wants, so it finds nothing to change. This
#    writes only to /run.
dir=/run/vdc-kubernetes-node
mkdir -p "$dir"
for kv in @SYSCTLS@; do
	f=${kv%%=*}
	file="$dir/$(echo "$f" | tr / .)"
	echo "${kv#*=}" >"$file"
	mountpoint -q "/proc/sys/$f" || mount --bind "$file" "/proc/sys/$f"
done
`

// WriteKubernetesNode installs and enables KubernetesNodeUnit in the
// machine whose root is root. It is written into each machine (its
// overlay) rather than into the shared tree because it makes up for how
// systemd-nspawn runs the machine (Args), whatever tree it boots: the two
// change together, and a change needs no new tree.
func WriteKubernetesNode(root string) error {
	var kvs []string
	for _, k := range slices.Sorted(maps.Keys(KubernetesNodeSysctls)) {
		kvs = append(kvs, k+"="+KubernetesNodeSysctls[k])
	}
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{"etc/systemd/system/" + KubernetesNodeUnit, kubernetesNodeUnit, 0o644},
		{strings.TrimPrefix(KubernetesNodeScript, "/"), strings.Replace(kubernetesNodeScript, "@SYSCTLS@", strings.Join(kvs, " "), 1), 0o755},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("nspawn: %w", err)
		}
		os.Remove(p)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("nspawn: %w", err)
		}
	}
	wants := filepath.Join(root, "etc/systemd/system/sysinit.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("nspawn: %w", err)
	}
	link := filepath.Join(wants, KubernetesNodeUnit)
	os.Remove(link)
	if err := os.Symlink("../"+KubernetesNodeUnit, link); err != nil {
		return fmt.Errorf("nspawn: %w", err)
	}
	return nil
}
