package content

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteImageRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteImage(&b, []byte("the kernel"), []byte("the initrd")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sums, size, err := extractImage(&b, dir)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len("the kernel")+len("the initrd")) || len(sums) != 2 {
		t.Errorf("size %d, sums %v", size, sums)
	}
	for name, want := range map[string]string{KernelFile: "the kernel", InitrdFile: "the initrd"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
