package images

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

// The images neco builds, named and tagged as upstream Kubernetes
// KubernetesVersion's conformance tests (test/utils/image/manifest.go),
// kubelet and kubeadm ask for them.
const (
	KubernetesVersion = "v1.37.2"

	PauseName   = "registry.k8s.io/pause:3.10.2"
	BusyboxName = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
	AgnhostName = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
	// AgnhostPrevName is the tests' AgnhostPrev, the image workloads roll
	// from to AgnhostName (StatefulSet, Deployment, kubectl specs): the
	// same agnhost and layers under the older tag, with labels of its own
	// so that its digest differs and a roll really changes the image.
	AgnhostPrevName = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	CoreDNSName     = "registry.k8s.io/coredns/coredns:v1.14.6"
)

// defaultPath is the PATH of every image, Docker's default.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// capNetBindService is the security.capability extended attribute that
// `setcap cap_net_bind_service=+ep` writes (struct vfs_cap_data, revision 2,
// little endian): effective, permitted CAP_NET_BIND_SERVICE (bit 10).
var capNetBindService = string([]byte{
	0x01, 0x00, 0x00, 0x02, // magic_etc: VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // permitted, inheritable: caps 0-31
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // permitted, inheritable: caps 32-63
})

// Inputs are the host files the images are made of.
type Inputs struct {
	Pause   string // static pause binary (tools/pause)
	Agnhost string // static agnhost binary (k8s.io/kubernetes/test/images/agnhost)
	// AgnhostCert and AgnhostKey are test/images/agnhost/porter/localhost.crt
	// and .key of the Kubernetes module: agnhost's image has them at / and
	// tests pass them to agnhost's TLS servers.
	AgnhostCert, AgnhostKey string
	// AgnhostTools are host executables that agnhost's image carries
	// (image path → host path), with the shared libraries they need:
	// Debian's curl and netcat-openbsd, which conformance specs exec in
	// agnhost as upstream's Alpine image has them (ToolFiles).
	AgnhostTools map[string]string
	CoreDNS      string // static CoreDNS binary (tools/coredns)
	Busybox      string // static busybox (Debian's busybox-static)
	// BusyboxVersion is the Debian version of Busybox, recorded in the
	// busybox and agnhost images' labels and annotations.
	BusyboxVersion string
	// BusyboxApplets are the applet names linked to /bin/busybox in /bin
	// (BusyboxApplets lists them).
	BusyboxApplets []string
}

// BusyboxApplets lists the applets of the busybox binary at path, sorted.
func BusyboxApplets(ctx context.Context, path string) ([]string, error) {
	out, err := exec.CommandContext(ctx, path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("images: %s --list: %w", path, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	return applets, nil
}

// DebianVersion is the version of an installed Debian package.
func DebianVersion(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("images: dpkg-query %s: %w", pkg, err)
	}
	return string(bytes.TrimSpace(out)), nil
}

// Build makes the images (PauseName, BusyboxName, AgnhostName,
// AgnhostPrevName, CoreDNSName) from in. The busybox image's only layer is
// also agnhost's bottom layer, and both agnhost tags share their layers.
func Build(in Inputs) (*Set, error) {
	for flag, p := range map[string]string{
		"pause": in.Pause, "agnhost": in.Agnhost, "agnhost certificate": in.AgnhostCert,
		"agnhost key": in.AgnhostKey, "coredns": in.CoreDNS, "busybox": in.Busybox,
	} {
		if p == "" {
			return nil, fmt.Errorf("images: no %s given", flag)
		}
	}
	if in.BusyboxVersion == "" || len(in.BusyboxApplets) == 0 {
		return nil, fmt.Errorf("images: busybox version and applets are needed")
	}

	tools, err := ToolFiles(in.AgnhostTools)
	if err != nil {
		return nil, err
	}
	// Compressing the layers is most of the work: one goroutine each.
	specs := [][]File{busyboxFiles(in), pauseFiles(in), append(agnhostFiles(in), tools...), coreDNSFiles(in)}
	layers := make([]*Layer, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, files := range specs {
		wg.Go(func() { layers[i], errs[i] = NewLayer(files) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	busybox, pause, agnhost, coredns := layers[0], layers[1], layers[2], layers[3]

	busyboxMeta := map[string]string{
		"org.opencontainers.image.title":   "busybox",
		"org.opencontainers.image.version": in.BusyboxVersion,
		"org.opencontainers.image.description": "Debian's busybox-static " + in.BusyboxVersion +
			" under the name upstream Kubernetes " + KubernetesVersion + " uses for busybox 1.37.0",
		"io.openneco.busybox.debian-version": in.BusyboxVersion,
	}
	images := []struct {
		name   string
		cfg    Config
		layers []*Layer
	}{
		{PauseName, Config{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			Env:        []string{defaultPath},
			Labels:     meta("pause", "3.10.2", "neco's pause (tools/pause), Kubernetes' pod sandbox"),
		}, []*Layer{pause}},
		{BusyboxName, Config{
			Cmd:    []string{"sh"},
			Env:    []string{defaultPath},
			Labels: busyboxMeta,
		}, []*Layer{busybox}},
		{AgnhostName, agnhostConfig(in, ""), []*Layer{busybox, agnhost}},
		{AgnhostPrevName, agnhostConfig(in, ", tagged 2.55: the conformance tests' previous agnhost"), []*Layer{busybox, agnhost}},
		{CoreDNSName, Config{
			Entrypoint:   []string{"/coredns"},
			User:         "65532:65532",
			WorkingDir:   "/",
			Env:          []string{defaultPath},
			ExposedPorts: []string{"53/tcp", "53/udp"},
			Labels:       meta("coredns", "1.14.6", "CoreDNS v1.14.6 with the plugins of a cluster DNS (tools/coredns)"),
		}, []*Layer{coredns}},
	}
	set := &Set{}
	for _, im := range images {
		im.cfg.Annotations = im.cfg.Labels
		img, err := NewImage(im.cfg, im.layers...)
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", im.name, err)
		}
		if err := set.Add(im.name, img); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// agnhostConfig is the configuration of both agnhost tags; note ends the
// description (so the tags' digests differ).
func agnhostConfig(in Inputs, note string) Config {
	return Config{
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		Env:          []string{defaultPath},
		ExposedPorts: []string{"80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"},
		Labels: merge(meta("agnhost", "2.66.1", "agnhost of Kubernetes "+KubernetesVersion+" on Debian's busybox-static "+
			in.BusyboxVersion+note), map[string]string{"io.openneco.busybox.debian-version": in.BusyboxVersion}),
	}
}

func meta(title, version, description string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       title,
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.description": description,
	}
}

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func pauseFiles(in Inputs) []File {
	return []File{HostFile("/pause", 0o755, in.Pause)}
}

// busyboxFiles is the busybox image, like Docker's busybox: every applet a
// link in /bin, root and nobody, /tmp.
func busyboxFiles(in Inputs) []File {
	files := []File{
		HostFile("/bin/busybox", 0o755, in.Busybox),
		Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")),
		Bytes("/etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n")),
		Dir("/home", 0o755),
		Dir("/root", 0o700),
		Dir("/tmp", 0o777|fs.ModeSticky),
		Dir("/usr/bin", 0o755),
		Dir("/usr/sbin", 0o755),
		Dir("/var", 0o755),
	}
	seen := map[string]bool{"busybox": true}
	for _, a := range in.BusyboxApplets {
		if seen[a] || a == "" || strings.Contains(a, "/") {
			continue
		}
		seen[a] = true
		files = append(files, Symlink("/bin/"+a, "busybox"))
	}
	return files
}

// agnhostFiles is what upstream's agnhost Dockerfile adds to its base image
// that neco has: the binary, its agnhost-2 link, porter's certificate,
// /uploads and the user and group a security-context test expects.
func agnhostFiles(in Inputs) []File {
	return []File{
		HostFile("/agnhost", 0o755, in.Agnhost),
		Symlink("/agnhost-2", "agnhost"),
		HostFile("/localhost.crt", 0o644, in.AgnhostCert),
		HostFile("/localhost.key", 0o644, in.AgnhostKey),
		Dir("/uploads", 0o755),
		Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/home:/bin/false\n"+
			"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n")),
		Bytes("/etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"+
			"user-defined-in-image:x:1000:\n"+
			"group-defined-in-image:x:50000:user-defined-in-image\n")),
		{Path: "/home/user-defined-in-image", Mode: fs.ModeDir | 0o755, UID: 1000, GID: 1000},
	}
}

// coreDNSFiles is upstream's CoreDNS image without the distroless extras
// neco does not need (CA certificates, time zones): the binary with the
// capability to bind port 53 as a non-root user, and that user.
func coreDNSFiles(in Inputs) []File {
	return []File{
		{Path: "/coredns", Mode: 0o755, Source: in.CoreDNS, Xattrs: map[string]string{"security.capability": capNetBindService}},
		Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		Bytes("/etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")),
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
		Dir("/root", 0o700),
		Dir("/tmp", 0o777|fs.ModeSticky),
	}
}
