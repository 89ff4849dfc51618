package necodc

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/neco"
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

func TestInitramfs(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "modules")
	os.MkdirAll(filepath.Join(mods, "kernel"), 0o755)
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/virtio_net.ko:\n"), 0o644)
	os.WriteFile(filepath.Join(mods, "kernel/virtio_net.ko"), []byte("module"), 0o644)
	bb := filepath.Join(dir, "busybox")
	os.WriteFile(bb, []byte("\x7fELF static busybox"), 0o755)
	gz, err := buildInitramfs(bb, mods)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	// newc entries: magic, then the name NUL-terminated after the header.
	var names []string
	for i := 0; i+110 <= len(raw); {
		if string(raw[i:i+6]) != "070701" {
			t.Fatalf("bad magic at %d", i)
		}
		hex := func(f int) int {
			var n int
			for _, c := range raw[i+6+8*f : i+6+8*f+8] {
				n = n*16 + strings.IndexByte("0123456789ABCDEF", c)
			}
			return n
		}
		size, nameLen := hex(6), hex(11)
		name := string(raw[i+110 : i+110+nameLen-1])
		names = append(names, name)
		i = (i + 110 + nameLen + 3) &^ 3
		i = (i + size + 3) &^ 3
		if name == "TRAILER!!!" {
			break
		}
	}
	for _, want := range []string{"init", "bin/busybox", "udhcpc.script", "dev/console", "lib/modules/virtio_net.ko", "modules.order", "TRAILER!!!"} {
		if !slices.Contains(names, want) {
			t.Errorf("initramfs lacks %s: %v", want, names)
		}
	}
	// A dynamically linked busybox cannot run in it.
	os.WriteFile(bb, []byte("\x7fELF /lib64/ld-linux-x86-64.so.2"), 0o755)
	if _, err := buildInitramfs(bb, mods); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("dynamic busybox: %v", err)
	}
}

func TestCompleted(t *testing.T) {
	req := &neco.UpdateRequest{ID: 7, Version: "2024.01.01-2", Servers: []int{0, 1, 2}}
	st := func(id int64, c neco.Cond) *neco.UpdateStatus {
		return &neco.UpdateStatus{RequestID: id, Cond: c, Step: 4}
	}
	tests := []struct {
		name    string
		s       CDStatus
		want    bool
		wantErr bool
	}{
		{"no request", CDStatus{}, false, false},
		{"other version", CDStatus{Request: &neco.UpdateRequest{Version: "2024.01.01-1"}}, false, false},
		{"all completed", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(7, neco.CondCompleted), "2": st(7, neco.CondCompleted)}}, true, false},
		{"one still running", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(7, neco.CondRunning), "2": st(7, neco.CondCompleted)}}, false, false},
		{"a status of an older request", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(6, neco.CondCompleted), "2": st(7, neco.CondCompleted)}}, false, false},
		{"aborted", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{"1": st(7, neco.CondAborted)}}, false, true},
		{"stopped", CDStatus{Request: &neco.UpdateRequest{Version: "2024.01.01-2", Stop: true}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Completed("2024.01.01-2")
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Completed = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
