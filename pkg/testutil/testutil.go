// Package testutil holds the rules every test with outside prerequisites
// follows: on a developer machine a missing prerequisite skips the test; in
// CI (CI=true) it fails it, so nothing is silently left untested.
package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips t, or fails it in CI, because of a missing prerequisite.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing (CI=true makes this a failure): "+format, args...)
	}
	t.Skipf("prerequisite missing: "+format, args...)
}

// RequireRoot needs the test to run as root (network namespaces, mounts).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "must run as root")
	}
}

// RequireCommands needs every named program on PATH and returns their paths
// in order.
func RequireCommands(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			Missing(t, "%s not found on PATH (make setup installs it)", n)
		}
		paths[i] = p
	}
	return paths
}

// RequireFile needs a file to exist, for example firmware from a package.
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s: %v (make setup installs it)", path, err)
	}
}

// DieWithTest makes the process cmd starts receive SIGKILL when the test
// binary dies, so that servers a test starts never outlive a test binary
// killed by a timeout or a signal. Call it before cmd.Start.
func DieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
