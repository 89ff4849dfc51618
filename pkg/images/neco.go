package images

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
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

	// NginxName and NginxNewName are the tests' Nginx and NginxNew:
	// Debian's nginx on the busybox layer, one image under both tags (with
	// labels of their own, as the agnhost tags).
	NginxName    = "registry.k8s.io/e2e-test-images/nginx:1.27.0-2"
	NginxNewName = "registry.k8s.io/e2e-test-images/nginx:1.28.0-2"
	// KittenName and NautilusName are agnhost's test-webserver serving a
	// picture and data.json naming it (kubectl's Update Demo specs).
	KittenName   = "registry.k8s.io/e2e-test-images/kitten:1.8"
	NautilusName = "registry.k8s.io/e2e-test-images/nautilus:1.8"
	// NonRootName is busybox run as user 1234; NonewprivsName runs a
	// set-user-ID-root program printing its effective user ID.
	NonRootName    = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	NonewprivsName = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	// DNSTestingName is the DNS specs' querier: busybox with Debian's dig
	// and glibc's getent (DNSTestingTools).
	DNSTestingName = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"
)

// nginxUID is the user nginx's workers run as in upstream's image.
const nginxUID = 101

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
	// Debian's curl, netcat-openbsd, dig and getent, which conformance
	// specs exec in agnhost as upstream's Alpine image has them (ToolFiles).
	AgnhostTools map[string]string
	// DNSTestingTools are the host executables of the glibc-dns-testing
	// image, as AgnhostTools: Debian's dig and glibc's getent.
	DNSTestingTools map[string]string
	CoreDNS         string // static CoreDNS binary (tools/coredns)
	Busybox         string // static busybox (Debian's busybox-static)
	// BusyboxVersion is the Debian version of Busybox, recorded in the
	// labels and annotations of every image with the busybox layer.
	BusyboxVersion string
	// BusyboxApplets are the applet names linked to /bin/busybox in /bin
	// (BusyboxApplets lists them).
	BusyboxApplets []string
	// Nginx is Debian's nginx executable (package nginx) and NginxMimeTypes
	// its mime.types (package nginx-common), unpacked from the packages,
	// not installed; NginxVersion is their Debian version, recorded in the
	// nginx images' labels.
	Nginx, NginxMimeTypes, NginxVersion string
	// KittenHTML and NautilusHTML are test/images/kitten/html and
	// test/images/nautilus/html of the Kubernetes module: the picture and
	// data.json each image serves.
	KittenHTML, NautilusHTML string
	// Nonewprivs is the static nnp program (test/images/nonewprivs).
	Nonewprivs string
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

// DebianPackageVersion is the version of the one package file of pkg in
// dir (pkg_*.deb, as apt-get download names it).
func DebianPackageVersion(ctx context.Context, dir, pkg string) (string, error) {
	debs, err := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	if len(debs) != 1 {
		return "", fmt.Errorf("images: want one %s_*.deb in %s, found %d", pkg, dir, len(debs))
	}
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", debs[0], "Version").Output()
	if err != nil {
		return "", fmt.Errorf("images: dpkg-deb -f %s: %w", debs[0], err)
	}
	return string(bytes.TrimSpace(out)), nil
}

// Build makes the images (the names above) from in. The busybox image's
// only layer is the bottom layer of every image with a shell (agnhost,
// kitten, nautilus, nginx, nonroot, nonewprivs, glibc-dns-testing), whose
// labels carry busybox's Debian version; kitten and nautilus add
// their pictures on top of agnhost's layers, and the two tags of agnhost
// and of nginx share their layers.
func Build(in Inputs) (*Set, error) {
	for flag, p := range map[string]string{
		"pause": in.Pause, "agnhost": in.Agnhost, "agnhost certificate": in.AgnhostCert,
		"agnhost key": in.AgnhostKey, "coredns": in.CoreDNS, "busybox": in.Busybox,
		"nginx": in.Nginx, "nginx mime.types": in.NginxMimeTypes, "nginx version": in.NginxVersion,
		"kitten html": in.KittenHTML, "nautilus html": in.NautilusHTML, "nonewprivs": in.Nonewprivs,
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
	dnsTools, err := ToolFiles(in.DNSTestingTools)
	if err != nil {
		return nil, err
	}
	nginx, err := nginxFiles(in)
	if err != nil {
		return nil, err
	}
	// Compressing the layers is most of the work: one goroutine each.
	specs := [][]File{busyboxFiles(in), pauseFiles(in), append(agnhostFiles(in), tools...), coreDNSFiles(in),
		nginx, webserverFiles(in.KittenHTML, "kitten"), webserverFiles(in.NautilusHTML, "nautilus"), nonewprivsFiles(in),
		append(dnsTools, nsswitch)}
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
	nginxLayer, kitten, nautilus, nnp, dnsTesting := layers[4], layers[5], layers[6], layers[7], layers[8]

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
		{NginxName, nginxConfig(in, "1.27.0-2"), []*Layer{busybox, nginxLayer}},
		{NginxNewName, nginxConfig(in, "1.28.0-2"), []*Layer{busybox, nginxLayer}},
		{KittenName, webserverConfig(in, "kitten"), []*Layer{busybox, agnhost, kitten}},
		{NautilusName, webserverConfig(in, "nautilus"), []*Layer{busybox, agnhost, nautilus}},
		{NonRootName, Config{
			Cmd:    []string{"sh"},
			User:   "1234",
			Env:    []string{defaultPath},
			Labels: merge(meta("nonroot", "1.5", "Debian's busybox-static "+in.BusyboxVersion+" run as user 1234"), busyboxLabel(in)),
		}, []*Layer{busybox}},
		{NonewprivsName, Config{
			Cmd: []string{"nnp"},
			Env: []string{defaultPath},
			Labels: merge(meta("nonewprivs", "1.4", "nnp of Kubernetes "+KubernetesVersion+" (test/images/nonewprivs), set-user-ID root, on Debian's busybox-static "+in.BusyboxVersion),
				busyboxLabel(in)),
		}, []*Layer{busybox, nnp}},
		{DNSTestingName, Config{
			Cmd:    []string{"sh"},
			Env:    []string{defaultPath},
			Labels: merge(meta("glibc-dns-testing", "2.1.1", "Debian's dig and glibc's getent on Debian's busybox-static "+in.BusyboxVersion), busyboxLabel(in)),
		}, []*Layer{busybox, dnsTesting}},
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
			in.BusyboxVersion+note), busyboxLabel(in)),
	}
}

// busyboxLabel is the label of every image with the busybox layer: the
// Debian version of the busybox inside.
func busyboxLabel(in Inputs) map[string]string {
	return map[string]string{"io.openneco.busybox.debian-version": in.BusyboxVersion}
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
		nsswitch,
	}
}

// nsswitch makes glibc's getent read /etc/hosts first, then ask the DNS
// (glibc has both in libc.so.6; without the file it asks the DNS first).
var nsswitch = Bytes("/etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files dns\n"))

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

// nginxConfig is the configuration of both nginx tags, as upstream's image
// (the official nginx image): nginx in the foreground on port 80, stopped
// gracefully by SIGQUIT. tag goes into the labels, so the digests differ.
func nginxConfig(in Inputs, tag string) Config {
	return Config{
		Cmd:          []string{"nginx", "-g", "daemon off;"},
		Env:          []string{defaultPath},
		ExposedPorts: []string{"80/tcp"},
		StopSignal:   "SIGQUIT",
		Labels: merge(meta("nginx", tag, "Debian's nginx "+in.NginxVersion+" on Debian's busybox-static "+in.BusyboxVersion+
			", under the tag upstream Kubernetes "+KubernetesVersion+" uses for nginx "+strings.SplitN(tag, "-", 2)[0]),
			map[string]string{"io.openneco.nginx.debian-version": in.NginxVersion, "io.openneco.busybox.debian-version": in.BusyboxVersion}),
	}
}

// nginxConf serves /usr/share/nginx/html on port 80 with the workers as
// user nginx, logging to the container's standard output and error.
// Debian's build keeps its temporary files in /var/lib/nginx.
const nginxConf = `user nginx;
worker_processes auto;
error_log stderr notice;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80;
        server_name localhost;
        location / {
            root /usr/share/nginx/html;
            index index.html;
        }
    }
}
`

const nginxIndex = `<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and working.</p>
</body>
</html>
`

// nginxFiles is what the nginx images add to busybox: Debian's nginx with
// the shared libraries it needs, its configuration and page, the nginx
// user, and the directories Debian's build writes to (logs linked to the
// container's output, as upstream's image does).
func nginxFiles(in Inputs) ([]File, error) {
	files, err := ToolFiles(map[string]string{"/usr/sbin/nginx": in.Nginx})
	if err != nil {
		return nil, err
	}
	uid := fmt.Sprint(nginxUID)
	return append(files,
		Bytes("/etc/nginx/nginx.conf", 0o644, []byte(nginxConf)),
		HostFile("/etc/nginx/mime.types", 0o644, in.NginxMimeTypes),
		Bytes("/usr/share/nginx/html/index.html", 0o644, []byte(nginxIndex)),
		Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/home:/bin/false\n"+
			"nginx:x:"+uid+":"+uid+":nginx:/nonexistent:/bin/false\n")),
		Bytes("/etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\nnginx:x:"+uid+":\n")),
		Dir("/run", 0o755),
		Dir("/var/lib/nginx", 0o755),
		Symlink("/var/log/nginx/access.log", "/dev/stdout"),
		Symlink("/var/log/nginx/error.log", "/dev/stderr"),
	), nil
}

// webserverFiles is what upstream's kitten and nautilus images add to
// agnhost: name.jpg and data.json from html, at /, which test-webserver
// serves.
func webserverFiles(html, name string) []File {
	return []File{
		HostFile("/"+name+".jpg", 0o644, filepath.Join(html, name+".jpg")),
		HostFile("/data.json", 0o644, filepath.Join(html, "data.json")),
	}
}

func webserverConfig(in Inputs, name string) Config {
	c := agnhostConfig(in, "")
	c.Cmd = []string{"test-webserver"}
	c.Labels = merge(meta(name, "1.8", "agnhost's test-webserver of Kubernetes "+KubernetesVersion+" serving "+name+".jpg and data.json"),
		busyboxLabel(in))
	return c
}

// nonewprivsFiles is nnp, set-user-ID root, where upstream's image has it.
func nonewprivsFiles(in Inputs) []File {
	return []File{HostFile("/usr/local/bin/nnp", 0o755|fs.ModeSetuid, in.Nonewprivs)}
}
