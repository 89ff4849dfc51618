package images_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt")

// syntheticInputs are small stand-ins for the real binaries, with fixed
// contents, so that their images' digests never change.
func syntheticInputs(t *testing.T) images.Inputs {
	t.Helper()
	dir := t.TempDir()
	in := images.Inputs{BusyboxVersion: "1:1.35.0-4+deb12u1+b1", BusyboxApplets: []string{"sh", "ls", "nc", "nslookup", "wget", "busybox"}}
	for p, name := range map[*string]string{
		&in.Pause: "pause", &in.Agnhost: "agnhost", &in.AgnhostCert: "localhost.crt",
		&in.AgnhostKey: "localhost.key", &in.CoreDNS: "coredns", &in.Busybox: "busybox",
		&in.NginxMimeTypes: "mime.types", &in.Nonewprivs: "nnp",
	} {
		*p = filepath.Join(dir, name)
		if err := os.WriteFile(*p, []byte("synthetic "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// nginx's libraries are looked up: a static ELF executable needs none.
	in.Nginx = filepath.Join(dir, "nginx")
	if err := os.WriteFile(in.Nginx, staticELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	in.NginxVersion = "1.22.1-9+deb12u11"
	for p, name := range map[*string]string{&in.KittenHTML: "kitten", &in.NautilusHTML: "nautilus"} {
		*p = filepath.Join(dir, name)
		if err := os.Mkdir(*p, 0o755); err != nil {
			t.Fatal(err)
		}
		for file, data := range map[string]string{name + ".jpg": "synthetic " + name, "data.json": `{"image": "` + name + `.jpg"}`} {
			if err := os.WriteFile(filepath.Join(*p, file), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return in
}

// staticELF is the header of an x86-64 executable with no program or
// section headers: an ELF file that needs no shared library.
func staticELF() []byte {
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT), Ehsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	_ = binary.Write(&b, binary.LittleEndian, h)
	return b.Bytes()
}

func build(t *testing.T, in images.Inputs, dir string) []images.Entry {
	t.Helper()
	set, err := images.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := set.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func format(entries []images.Entry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s %d\n", e.Name, e.Digest, e.Size)
	}
	return b.String()
}

// TestBuildReproducible builds the images twice from the same synthetic
// inputs, in directories of different names: every file of the two layouts
// is the same, and the digests are the golden ones.
func TestBuildReproducible(t *testing.T) {
	in := syntheticInputs(t)
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "other")
	ea, eb := build(t, in, a), build(t, in, b)
	if format(ea) != format(eb) {
		t.Fatalf("two builds differ:\n%s\n%s", format(ea), format(eb))
	}
	fa, fb := readTree(t, a), readTree(t, b)
	if len(fa) != len(fb) {
		t.Fatalf("%d files, then %d", len(fa), len(fb))
	}
	for name, data := range fa {
		if !bytes.Equal(data, fb[name]) {
			t.Errorf("%s differs between the two builds", name)
		}
	}

	golden := filepath.Join("testdata", "golden.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(format(ea)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := format(ea); got != string(want) {
		t.Errorf("digests changed (if on purpose: go test ./pkg/images -run TestBuildReproducible -update):\n%s\nwant\n%s", got, want)
	}

	// Writing over an existing layout replaces it.
	in.BusyboxVersion = "other"
	if ec := build(t, in, a); format(ec) == format(ea) {
		t.Error("a new busybox version did not change the images")
	}
	if _, err := os.Stat(filepath.Join(a, "blobs")); err != nil {
		t.Error(err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(a), ".a.tmp*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestLayoutRoundTrip: List gives back the names in index.json with the
// images' digests; a blob two images share is stored once.
func TestLayoutRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	entries := build(t, syntheticInputs(t), dir)
	listed, err := images.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if format(listed) != format(entries) {
		t.Errorf("List:\n%s\nWrite:\n%s", format(listed), format(entries))
	}
	var names []string
	for _, e := range listed {
		names = append(names, e.Name)
	}
	want := []string{images.PauseName, images.CoreDNSName, images.AgnhostName, images.AgnhostPrevName, images.BusyboxName,
		images.NginxName, images.NginxNewName, images.KittenName, images.NautilusName, images.NonRootName, images.NonewprivsName,
		images.DNSTestingName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}

	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[v1.Hash]bool{}
	for _, d := range im.Manifests {
		if d.Annotations[images.AnnotationRefName] != d.Annotations[images.AnnotationContainerdName] {
			t.Errorf("%s: annotations %v", d.Digest, d.Annotations)
		}
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
			t.Errorf("%s: platform %v", d.Digest, d.Platform)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		blobs[d.Digest], blobs[m.Config.Digest] = true, true
		for _, l := range m.Layers {
			blobs[l.Digest] = true
		}
	}
	stored, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	// 12 manifests, 12 configs, 9 distinct layers (busybox, pause, agnhost,
	// CoreDNS, nginx, kitten, nautilus, nnp, glibc-dns-testing's tools).
	if len(stored) != len(blobs) || len(blobs) != 33 {
		t.Errorf("%d blobs stored, %d distinct blobs referenced, want 33", len(stored), len(blobs))
	}
}

func TestSetErrors(t *testing.T) {
	img := testImage(t, "x")
	var s images.Set
	if _, err := s.Write(t.TempDir()); err == nil {
		t.Error("an empty set was written")
	}
	for _, ref := range []string{"pause:3.10.2", "registry.k8s.io/pause", "registry.k8s.io/pause@sha256:" + strings.Repeat("0", 64)} {
		if err := s.Add(ref, img); err == nil {
			t.Errorf("%s was accepted", ref)
		}
	}
	if err := s.Add("registry.k8s.io/pause:3.10.2", img); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("registry.k8s.io/pause:3.10.2", img); err == nil {
		t.Error("a name was added twice")
	}
	if _, err := images.Build(images.Inputs{}); err == nil {
		t.Error("Build without inputs succeeded")
	}
}

// testImage is a one-layer image with a file holding content.
func testImage(t *testing.T, content string) v1.Image {
	t.Helper()
	l := mustLayer(t, []images.File{images.Bytes("/content", 0o644, []byte(content))})
	img, err := images.NewImage(images.Config{Cmd: []string{"/content"}}, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestRealImages builds the images from the real binaries (make pause
// coredns bin/agnhost bin/nonewprivs, Debian's busybox-static, and Debian's
// nginx that make images unpacks into build/nginx), twice.
func TestRealImages(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	nginx := filepath.Join(root, "build", "nginx")
	in := images.Inputs{
		Pause:          filepath.Join(root, "bin", "pause"),
		Agnhost:        filepath.Join(root, "bin", "agnhost"),
		CoreDNS:        filepath.Join(root, "bin", "coredns"),
		Nonewprivs:     filepath.Join(root, "bin", "nonewprivs"),
		Busybox:        "/bin/busybox",
		Nginx:          filepath.Join(nginx, "usr", "sbin", "nginx"),
		NginxMimeTypes: filepath.Join(nginx, "etc", "nginx", "mime.types"),
	}
	for _, p := range []string{in.Pause, in.Agnhost, in.CoreDNS, in.Nonewprivs, in.Busybox, in.Nginx} {
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(t, "%v (make images builds, downloads and installs them)", err)
		}
	}
	if in.NginxVersion, err = images.DebianPackageVersion(t.Context(), filepath.Join(nginx, "debs"), "nginx"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	cmd.Dir = filepath.Join(root, "tools", "kubernetes")
	out, err := cmd.Output()
	if err != nil {
		testutil.Missing(t, "the Kubernetes module (tools/kubernetes): %v", err)
	}
	testImages := filepath.Join(strings.TrimSpace(string(out)), "test", "images")
	src := filepath.Join(testImages, "agnhost", "porter")
	in.AgnhostCert, in.AgnhostKey = filepath.Join(src, "localhost.crt"), filepath.Join(src, "localhost.key")
	in.KittenHTML, in.NautilusHTML = filepath.Join(testImages, "kitten", "html"), filepath.Join(testImages, "nautilus", "html")
	if in.BusyboxVersion, err = images.DebianVersion(t.Context(), "busybox-static"); err != nil {
		testutil.Missing(t, "%v", err)
	}
	if in.BusyboxApplets, err = images.BusyboxApplets(t.Context(), in.Busybox); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "nc", "nslookup", "wget", "id", "sleep"} {
		if !slices.Contains(in.BusyboxApplets, a) {
			t.Errorf("busybox has no %s", a)
		}
	}

	dir := filepath.Join(t.TempDir(), "images")
	first := build(t, in, dir)
	if second := build(t, in, filepath.Join(t.TempDir(), "again")); format(first) != format(second) {
		t.Errorf("two builds differ:\n%s\n%s", format(first), format(second))
	}
	t.Logf("\n%s", format(first))

	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]*v1.ConfigFile{}
	layers := map[string][]v1.Descriptor{}
	for _, e := range first {
		img, err := idx.Image(e.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if cfgs[e.Name], err = img.ConfigFile(); err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		layers[e.Name] = m.Layers
	}
	for _, tt := range []struct {
		name            string
		entrypoint, cmd []string
		user            string
		layers          int
	}{
		{images.PauseName, []string{"/pause"}, nil, "65535:65535", 1},
		{images.BusyboxName, nil, []string{"sh"}, "", 1},
		{images.AgnhostName, []string{"/agnhost"}, []string{"pause"}, "", 2},
		{images.AgnhostPrevName, []string{"/agnhost"}, []string{"pause"}, "", 2},
		{images.CoreDNSName, []string{"/coredns"}, nil, "65532:65532", 1},
		{images.NginxName, nil, []string{"nginx", "-g", "daemon off;"}, "", 2},
		{images.NginxNewName, nil, []string{"nginx", "-g", "daemon off;"}, "", 2},
		{images.KittenName, []string{"/agnhost"}, []string{"test-webserver"}, "", 3},
		{images.NautilusName, []string{"/agnhost"}, []string{"test-webserver"}, "", 3},
		{images.NonRootName, nil, []string{"sh"}, "1234", 1},
		{images.NonewprivsName, nil, []string{"nnp"}, "", 2},
		{images.DNSTestingName, nil, []string{"sh"}, "", 2},
	} {
		c := cfgs[tt.name]
		if c == nil {
			t.Errorf("%s not built", tt.name)
			continue
		}
		if !slices.Equal(c.Config.Entrypoint, tt.entrypoint) || !slices.Equal(c.Config.Cmd, tt.cmd) || c.Config.User != tt.user {
			t.Errorf("%s: entrypoint %q cmd %q user %q, want %q %q %q", tt.name, c.Config.Entrypoint, c.Config.Cmd, c.Config.User, tt.entrypoint, tt.cmd, tt.user)
		}
		if c.OS != "linux" || c.Architecture != "amd64" || len(layers[tt.name]) != tt.layers {
			t.Errorf("%s: %s/%s, %d layers", tt.name, c.OS, c.Architecture, len(layers[tt.name]))
		}
	}
	if bb, ag := layers[images.BusyboxName], layers[images.AgnhostName]; len(bb) == 0 || len(ag) == 0 || bb[0].Digest != ag[0].Digest {
		t.Errorf("agnhost's first layer is not busybox's: %v, %v", ag, bb)
	}
	if ag, prev := layers[images.AgnhostName], layers[images.AgnhostPrevName]; !slices.EqualFunc(ag, prev, func(a, b v1.Descriptor) bool { return a.Digest == b.Digest }) {
		t.Errorf("the two agnhost tags do not share their layers: %v, %v", ag, prev)
	}
	if v := cfgs[images.BusyboxName].Config.Labels["io.openneco.busybox.debian-version"]; v != in.BusyboxVersion {
		t.Errorf("busybox label %q, want %q", v, in.BusyboxVersion)
	}
	raw, _ := json.Marshal(cfgs[images.PauseName])
	t.Logf("pause config: %s", raw)
}
