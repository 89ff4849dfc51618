// Package fileutil writes files so that a crash never leaves half of one:
// the data goes to a temporary file in the same directory, is synced, and
// replaces the target with a rename.
package fileutil

import (
	"bytes"
	"os"
	"path/filepath"
)

// WriteAtomic writes data to path with mode, creating the directory when
// needed. Readers see the old content or the new, never a mix.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// WriteIfChanged is WriteAtomic unless path already holds exactly data; it
// reports whether it wrote.
func WriteIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	return true, WriteAtomic(path, data, mode)
}
