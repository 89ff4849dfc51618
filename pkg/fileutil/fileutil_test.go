package fileutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "key.pem")
	if err := WriteAtomic(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	changed, err := WriteIfChanged(path, []byte("secret"), 0o600)
	if err != nil || changed {
		t.Errorf("same content: changed=%v err=%v", changed, err)
	}
	changed, err = WriteIfChanged(path, []byte("new"), 0o600)
	if err != nil || !changed {
		t.Errorf("new content: changed=%v err=%v", changed, err)
	}
	if data, _ := os.ReadFile(path); string(data) != "new" {
		t.Errorf("content = %q", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
