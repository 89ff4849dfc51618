//go:build dctest

package dctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// agentBinary is the bgp-node-agent built from this tree for the machines
// of the suites that build their own data center; binDir holds it and the
// neco releases built for the shared one (neco_test.go).
var agentBinary, binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dctest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	agentBinary = filepath.Join(dir, "bgp-node-agent")
	for _, cmd := range []string{"bgp-node-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "../cmd/"+cmd)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "dctest: build %s: %v\n", cmd, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	releaseNecoDC(nil)
	if sharedLeft && code == 0 {
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
