package fabrictest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

var (
	// raceEnabled is set when the tests run with -race (race_test.go).
	raceEnabled bool

	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// requirements skips (or fails in CI) without root and the tools, then
// returns the bgp-node-agent binary, built once per test binary (with -race
// when the tests run with it).
func requirements(t testing.TB) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "bird", "ping", "dnsmasq", "go")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "bgp-node-agent-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "bgp-node-agent")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/openneco/neco/cmd/bgp-node-agent")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building bgp-node-agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}
