package images_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/testutil"
)

func TestToolFiles(t *testing.T) {
	const nc = "/usr/bin/nc.openbsd"
	if _, err := os.Stat(nc); err != nil {
		testutil.Missing(t, "%s: %v (make setup installs netcat-openbsd)", nc, err)
	}
	files, err := images.ToolFiles(map[string]string{"/usr/bin/nc": nc, "/bin/busybox": "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if f.Source == "" || !f.Mode.IsRegular() {
			t.Errorf("%s: not a regular file from the host (%+v)", f.Path, f)
		}
		if real, _ := filepath.EvalSymlinks(f.Source); real != f.Source {
			t.Errorf("%s comes from %s, a symbolic link", f.Path, f.Source)
		}
	}
	// nc, its libraries (libbsd, libc, and what they need) and the loader;
	// static busybox adds nothing but itself.
	for _, want := range []string{"/usr/bin/nc", "/bin/busybox", "/usr/lib/x86_64-linux-gnu/libbsd.so.0",
		"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libmd.so.0", "/lib64/ld-linux-x86-64.so.2"} {
		if !slices.Contains(paths, want) {
			t.Errorf("no %s in %v", want, paths)
		}
	}
	if !slices.IsSorted(paths) {
		t.Errorf("not sorted: %v", paths)
	}

	for name, tools := range map[string]map[string]string{
		"not ELF":       {"/x": "/etc/passwd"},
		"missing":       {"/x": "/nonexistent"},
		"relative path": {"x": "/bin/busybox"},
	} {
		if _, err := images.ToolFiles(tools); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
