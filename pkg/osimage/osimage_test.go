package osimage

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
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

// readCpio decodes a gzipped newc archive up to its trailer.
func readCpio(t *testing.T, gz []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]entry{}
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
			return files
		}
		i = (i + 110 + nameLen + 3) &^ 3
		files[name] = entry{uint32(mode), string(raw[i : i+size])}
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
	files := readCpio(t, gz)
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
