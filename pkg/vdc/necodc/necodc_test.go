package necodc

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/osimage"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/testutil"
)

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

// TestWriteOSImage builds the OS image (with busybox standing in for the
// node-health-agent program, to save a build) and, as root, runs BIRD from
// the unpacked initramfs: its interpreter and libraries came along.
func TestWriteOSImage(t *testing.T) {
	if _, _, err := osimage.Kernel(); err != nil {
		testutil.Missing(t, "%v", err)
	}
	if err := osimage.CheckStatic(Busybox); err != nil {
		testutil.Missing(t, "%v", err)
	}
	testutil.RequireFile(t, BIRD)
	out := filepath.Join(t.TempDir(), "images", "coreos", OSImageID+".tar")
	if err := WriteOSImage(out, Busybox, Busybox); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	var initrd []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Size == 0 {
			t.Errorf("%s is empty", hdr.Name)
		}
		names = append(names, hdr.Name)
		if hdr.Name == content.InitrdFile {
			initrd, _ = io.ReadAll(tr)
		}
	}
	if !slices.Equal(names, []string{content.KernelFile, content.InitrdFile}) {
		t.Errorf("image holds %v", names)
	}
	t.Logf("initrd.gz: %d bytes", len(initrd))

	testutil.RequireRoot(t)
	root := t.TempDir()
	unpack := exec.Command("sh", "-c", "zstd -dc | busybox cpio -id")
	unpack.Dir, unpack.Stdin = root, bytes.NewReader(initrd)
	if out, err := unpack.CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v: %s", err, out)
	}
	for _, p := range []string{"init", "udhcpc.script", "bin/failed-services", "bin/busybox", osHealthAgent, "lib/modules/dummy.ko"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if order, _ := os.ReadFile(filepath.Join(root, "modules.order")); !strings.Contains(string(order), "virtio_net.ko\ndummy.ko\n") {
		t.Errorf("modules.order:\n%s", order)
	}
	if out, err := exec.Command("chroot", root, osBIRD, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "BIRD version 2") {
		t.Errorf("BIRD in the initramfs: %v: %s", err, out)
	}
}

// TestFailedServices runs the OS image's health command (with busybox, as
// there): a listed service whose process runs is fine, one that does not
// run is reported.
func TestFailedServices(t *testing.T) {
	if err := osimage.CheckStatic(Busybox); err != nil {
		testutil.Missing(t, "%v", err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	list := filepath.Join(t.TempDir(), "services")
	os.WriteFile(list, []byte("sleep\nno-such-service\n"), 0o644)
	out, err := exec.Command(Busybox, "sh", "-c", strings.ReplaceAll(failedServices, "/run/services", list)).CombinedOutput()
	if err != nil || string(out) != "no-such-service\n" {
		t.Errorf("failed-services: %v: %q, want only the service that does not run", err, out)
	}
}

func TestSharedDiskTemplate(t *testing.T) {
	repo, err := os.ReadFile("../../../etc/cke-template.yml")
	if err != nil {
		t.Fatal(err)
	}
	withOptions := append(append([]byte{}, repo...), "options:\n  kube-api:\n    extra_args: [\"--v=1\"]\n"...)
	for name, in := range map[string][]byte{"shipped": repo, "with options": withOptions} {
		out, err := SharedDiskTemplate(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, err := cke.ParseCluster(out)
		if err != nil {
			t.Fatalf("%s: the template no longer parses: %v\n%s", name, err, out)
		}
		got, _ := c.Options.Kubelet.Config["evictionHard"].(map[string]any)
		if len(got) != len(SharedDiskEviction) || got["imagefs.available"] != "2Gi" {
			t.Errorf("%s: evictionHard %v", name, got)
		}
		if name == "with options" && len(c.Options.APIServer.ExtraArgs) != 1 {
			t.Errorf("the template's own options were lost: %+v", c.Options)
		}
	}
	own := []byte("name: x\noptions:\n  kubelet:\n    config:\n      evictionHard: {memory.available: 1Gi}\n")
	out, _ := SharedDiskTemplate(own)
	if !strings.Contains(string(out), "memory.available: 1Gi") || strings.Contains(string(out), "imagefs") {
		t.Errorf("a template's own thresholds were replaced:\n%s", out)
	}
	if _, err := SharedDiskTemplate([]byte("options: 3\n")); err == nil {
		t.Error("a template whose options is not a mapping was accepted")
	}
}
