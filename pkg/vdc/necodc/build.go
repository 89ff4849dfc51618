package necodc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Build is a neco release built from a source tree: its programs and its
// Debian package.
type Build struct {
	Version string
	// BinDir holds every program of the package (static, stripped).
	BinDir string
	// Deb is neco_<Version>_amd64.deb.
	Deb string
}

// Program is the path of one of the build's programs.
func (b *Build) Program(name string) string { return filepath.Join(b.BinDir, name) }

// BuildPackage builds release version from the tree at repo into dir the
// way `make deb` does — every ./cmd/... program static with the version
// stamped, the pinned etcd, etcdctl, Vault and Kubernetes from repo/bin
// and the images from repo/build/images (make etcd vault kube images),
// debian/build.sh — but uncompressed and without lintian: the
// package only travels on this machine, and compressing Vault takes
// minutes. Programs already compiled (the Go build cache) are only linked.
func BuildPackage(ctx context.Context, repo, dir, version string, log io.Writer, opts ...BuildOption) (*Build, error) {
	var o buildOptions
	for _, f := range opts {
		f(&o)
	}
	start := time.Now()
	b := &Build{Version: version, BinDir: filepath.Join(dir, "bin-"+version)}
	if err := os.MkdirAll(b.BinDir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range []string{"etcd", "etcdctl", "vault"} {
		if _, err := os.Stat(filepath.Join(repo, "bin", p)); err != nil {
			return nil, fmt.Errorf("necodc: %s: run make etcd vault first", err)
		}
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/openneco/neco/pkg/version.Version="+version,
		"-o", b.BinDir+"/", "./cmd/...")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("necodc: go build: %w\n%s", err, out)
	}
	for _, p := range []string{"etcd", "etcdctl", "vault"} {
		if err := linkOrCopy(filepath.Join(repo, "bin", p), filepath.Join(b.BinDir, p)); err != nil {
			return nil, err
		}
	}
	kube, err := kubeAsset(ctx, repo, dir)
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(repo, "build", "images")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		return nil, fmt.Errorf("necodc: the release's images: %w: run make images first", err)
	}
	src := o.ckeTemplate
	if src == "" {
		src = filepath.Join(repo, "etc", "cke-template.yml")
	}
	tmpl, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("necodc: the cluster.yml template: %w", err)
	}
	if tmpl, err = SharedDiskTemplate(tmpl); err != nil {
		return nil, fmt.Errorf("necodc: the cluster.yml template %s: %w", src, err)
	}
	tmplFile := filepath.Join(dir, "cke-template-"+version+".yml")
	if err := os.WriteFile(tmplFile, tmpl, 0o644); err != nil {
		return nil, err
	}
	pkg := exec.CommandContext(ctx, filepath.Join(repo, "debian", "build.sh"), version, b.BinDir, dir, kube, layout)
	pkg.Env = append(os.Environ(), "DEB_COMPRESS=none", "NECO_CKE_TEMPLATE="+tmplFile)
	out, err := pkg.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("necodc: debian/build.sh: %w\n%s", err, out)
	}
	b.Deb = strings.TrimSpace(string(out))
	fmt.Fprintf(log, "built neco %s: %s (%s)\n", version, b.Deb, time.Since(start).Round(100*time.Millisecond))
	return b, nil
}

// kubeAsset links repo/bin/kube into dir under the name the package ships
// it by, kube-<its Kubernetes version>.
func kubeAsset(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(repo, "bin", "kube")
	out, err := exec.CommandContext(ctx, bin, "kubectl", "version", "--client", "-o", "json").Output()
	if err != nil {
		return "", fmt.Errorf("necodc: %s: %w: run make kube first", bin, err)
	}
	var v struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ClientVersion.GitVersion == "" {
		return "", fmt.Errorf("necodc: the version of %s: %v %s", bin, err, out)
	}
	asset := filepath.Join(dir, "kube-"+v.ClientVersion.GitVersion)
	return asset, linkOrCopy(bin, asset)
}

// linkOrCopy hard-links src to dst (replacing dst), or copies it across
// file systems.
func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BuildOption changes what BuildPackage ships.
type BuildOption func(*buildOptions)

type buildOptions struct{ ckeTemplate string }

// WithCKETemplate ships file as the release's cluster.yml template
// (debian/build.sh's NECO_CKE_TEMPLATE) instead of etc/cke-template.yml.
func WithCKETemplate(file string) BuildOption {
	return func(o *buildOptions) { o.ckeTemplate = file }
}

// SharedDiskEviction are the kubelets' hard eviction thresholds in the
// virtual data center. Its machines share this host's file system, so
// the default thresholds (15 % of the image file system, 10 % of the node
// file system free) would read the host's disk and evict the pods of
// every node at once when anything else on the host fills it; these leave
// absolute margins instead. Every signal is named: a partial map turns
// the others off.
var SharedDiskEviction = map[string]string{
	"memory.available":  "100Mi",
	"nodefs.available":  "2Gi",
	"imagefs.available": "2Gi",
	"nodefs.inodesFree": "5%",
}

// SharedDiskTemplate sets options.kubelet.config.evictionHard of a
// cluster.yml template to SharedDiskEviction, unless the template sets it.
func SharedDiskTemplate(tmpl []byte) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(tmpl, &m); err != nil {
		return nil, err
	}
	child := func(parent map[string]any, key string) (map[string]any, error) {
		switch v := parent[key].(type) {
		case nil:
			c := map[string]any{}
			parent[key] = c
			return c, nil
		case map[string]any:
			return v, nil
		default:
			return nil, fmt.Errorf("%s is not a mapping", key)
		}
	}
	cfg := m
	for _, k := range []string{"options", "kubelet", "config"} {
		var err error
		if cfg, err = child(cfg, k); err != nil {
			return nil, err
		}
	}
	if _, ok := cfg["evictionHard"]; !ok {
		cfg["evictionHard"] = SharedDiskEviction
	}
	return yaml.Marshal(m)
}
