//go:build dctest

package dctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// agentBinary is the bgp-node-agent built from this tree for the machines.
var agentBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dctest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "bgp-node-agent")
	build := exec.Command("go", "build", "-o", agentBinary, "../cmd/bgp-node-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "dctest: build bgp-node-agent:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
