package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binariesMu sync.Mutex
	binaries   = map[string]*goBinary{}
)

type goBinary struct {
	once sync.Once
	path string
	err  error
}

// GoBinary builds the command importPath (e.g.
// github.com/openneco/neco/cmd/sabakan) from this tree once per
// test binary, and returns the executable's path. Tests that run a daemon
// as a process, to kill and restart it, use it.
func GoBinary(t testing.TB, importPath string) string {
	t.Helper()
	binariesMu.Lock()
	b := binaries[importPath]
	if b == nil {
		b = &goBinary{}
		binaries[importPath] = b
	}
	binariesMu.Unlock()
	b.once.Do(func() {
		name := path.Base(importPath)
		dir, err := os.MkdirTemp("", name+"-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", b.path, importPath).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", importPath, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}
