package fabrictest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

// agentBinary is the bgp-node-agent built by TestMain.
var agentBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bgp-node-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "bgp-node-agent")
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "building bgp-node-agent needs the go command on PATH:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	args := []string{"build", "-o", agentBinary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command(gobin, append(args, "github.com/openneco/neco/cmd/bgp-node-agent")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building bgp-node-agent: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requirements skips (or fails in CI) without root and the tools.
func requirements(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "bird", "ping", "dnsmasq")
}
