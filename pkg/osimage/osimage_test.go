package osimage

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

func TestModuleOrder(t *testing.T) {
	dep := filepath.Join(t.TempDir(), "modules.dep")
	os.WriteFile(dep, []byte(`kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
`), 0o644)
	got, err := moduleOrder(dep, "virtio_pci", "virtio_net", "builtin")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
		"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// entry is one file of a newc archive.
type entry struct {
	mode uint32
	data string
}

// readCpio decodes a gzipped or zstd-compressed newc archive up to its
// trailer: its entries and their names in archive order.
func readCpio(t *testing.T, compressed []byte) (map[string]entry, []string) {
	t.Helper()
	var raw []byte
	if bytes.HasPrefix(compressed, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		cmd := exec.Command("zstd", "-dc")
		cmd.Stdin = bytes.NewReader(compressed)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("zstd -d: %v", err)
		}
		raw = out
	} else {
		zr, err := gzip.NewReader(bytes.NewReader(compressed))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]entry{}
	var order []string
	for i := 0; ; {
		if i+110 > len(raw) || string(raw[i:i+6]) != "070701" {
			t.Fatalf("no newc header at %d", i)
		}
		field := func(n int) int {
			v, err := strconv.ParseUint(string(raw[i+6+8*n:i+14+8*n]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		name := string(raw[i+110 : i+110+nameLen-1])
		if name == "TRAILER!!!" {
			return files, order
		}
		i = (i + 110 + nameLen + 3) &^ 3
		files[name] = entry{uint32(mode), string(raw[i : i+size])}
		order = append(order, name)
		i = (i + size + 3) &^ 3
	}
}

func TestInitramfs(t *testing.T) {
	bins := testutil.RequireCommands(t, "busybox")
	mods := t.TempDir()
	os.MkdirAll(filepath.Join(mods, "kernel"), 0o755)
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/virtio_net.ko: kernel/failover.ko\nkernel/failover.ko:\n"), 0o644)
	os.WriteFile(filepath.Join(mods, "kernel/virtio_net.ko"), []byte("virtio_net module"), 0o644)
	os.WriteFile(filepath.Join(mods, "kernel/failover.ko"), []byte("failover module"), 0o644)

	gz, err := Initramfs(bins[0], mods, map[string]string{"init": "#!/bin/busybox sh\necho hi\n"})
	if err != nil && strings.Contains(err.Error(), "dynamically linked") {
		testutil.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readCpio(t, gz)
	bb, _ := os.ReadFile(bins[0])
	for name, want := range map[string]entry{
		"init":                      {0o100755, "#!/bin/busybox sh\necho hi\n"},
		"bin/busybox":               {0o100755, string(bb)},
		"dev/console":               {0o020600, ""},
		"lib/modules/virtio_net.ko": {0o100644, "virtio_net module"},
		"lib/modules/failover.ko":   {0o100644, "failover module"},
		"modules.order":             {0o100644, "failover.ko\nvirtio_net.ko\n"},
		"lib/modules":               {0o040755, ""},
	} {
		if got, ok := files[name]; !ok || got != want {
			t.Errorf("%s: got mode %o, %d bytes; want mode %o, %d bytes", name, got.mode, len(got.data), want.mode, len(want.data))
		}
	}

	// A dynamically linked busybox could not run in it.
	if _, err := Initramfs("/bin/ls", mods, nil); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("dynamic busybox: %v", err)
	}
	if _, err := Initramfs(filepath.Join(mods, "modules.dep"), mods, nil); err == nil {
		t.Error("a text file was taken for busybox")
	}
}

func TestSharedLibraries(t *testing.T) {
	bins := testutil.RequireCommands(t, "ls")
	libs, err := SharedLibraries(bins[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) < 2 || filepath.Base(libs[0]) != "ld-linux-x86-64.so.2" {
		t.Fatalf("ls needs %v: want its interpreter first, then libraries", libs)
	}
	seen := map[string]bool{}
	for _, l := range libs {
		if seen[filepath.Base(l)] {
			t.Errorf("%s twice in %v", filepath.Base(l), libs)
		}
		seen[filepath.Base(l)] = true
	}
	if !seen["libc.so.6"] {
		t.Errorf("no libc in %v", libs)
	}
	if _, err := SharedLibraries(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("a missing executable has no error")
	}
}

// TestPrograms puts a dynamically linked program in a zstd-compressed
// initramfs and runs it from the unpacked archive (chroot, as root): what
// it needs came along.
func TestPrograms(t *testing.T) {
	bins := testutil.RequireCommands(t, "busybox", "ls", "zstd")
	mods := t.TempDir()
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/dummy.ko:\n"), 0o644)
	os.MkdirAll(filepath.Join(mods, "kernel"), 0o755)
	os.WriteFile(filepath.Join(mods, "kernel/dummy.ko"), []byte("dummy module"), 0o644)
	gz, err := Spec{Busybox: bins[0], ModDir: mods, Modules: []string{"dummy"},
		Programs: map[string]string{"usr/local/bin/ls": bins[1]}, Zstd: true}.Build()
	if err != nil && strings.Contains(err.Error(), "dynamically linked") {
		testutil.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(gz, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Error("not zstd-compressed")
	}
	files, order := readCpio(t, gz)
	if got := files["modules.order"].data; got != "dummy.ko\n" {
		t.Errorf("modules.order %q", got)
	}
	if _, ok := files["lib/modules/virtio_net.ko"]; ok {
		t.Error("NetworkModules came along though Modules was set")
	}
	// Every file comes after its directories; nothing twice.
	for i, name := range order {
		if d := filepath.Dir(name); d != "." && !slices.Contains(order[:i], d) {
			t.Errorf("%s before its directory %s", name, d)
		}
		if slices.Contains(order[:i], name) {
			t.Errorf("%s twice", name)
		}
	}
	ls, _ := os.ReadFile(bins[1])
	if files["usr/local/bin/ls"].data != string(ls) || files["usr/local/bin/ls"].mode != 0o100755 {
		t.Error("usr/local/bin/ls is not the host's ls")
	}
	libs, _ := SharedLibraries(bins[1])
	for _, l := range libs {
		if _, ok := files[strings.TrimPrefix(l, "/")]; !ok {
			t.Errorf("%s missing", l)
		}
	}

	testutil.RequireRoot(t)
	root := t.TempDir()
	for _, name := range order {
		p := filepath.Join(root, name)
		switch e := files[name]; e.mode & 0o170000 {
		case 0o040000:
			os.MkdirAll(p, 0o755)
		case 0o100000:
			os.WriteFile(p, []byte(e.data), os.FileMode(e.mode&0o777))
		}
	}
	out, err := exec.Command("chroot", root, "/usr/local/bin/ls", "/lib/modules").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "dummy.ko" {
		t.Errorf("ls in the unpacked initramfs: %v: %s", err, out)
	}
}
