package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
)

// buildPause builds this program as `make pause` does.
func buildPause(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestVersionAndSignals(t *testing.T) {
	bin := buildPause(t)
	out, err := exec.Command(bin, "-v").Output()
	if err != nil || string(out) != "pause.go "+version+" (openneco)\n" {
		t.Errorf("-v: %q, %v", out, err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin)
		cmd.Stderr = &stderr
		testutil.DieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// SIGCHLD does not stop it.
		time.Sleep(100 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGCHLD)
		time.Sleep(100 * time.Millisecond)
		_ = cmd.Process.Signal(sig)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%v: %v, want exit 0; stderr %q", sig, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "Shutting down, got signal") || !strings.Contains(stderr.String(), "should be the first process") {
			t.Errorf("%v: stderr %q", sig, stderr.String())
		}
	}
}

// TestReapsAsPID1 runs pause as PID 1 of a new PID namespace, orphans a
// process in it, and checks that pause reaps it once it exits (no zombie is
// left), then that SIGTERM stops it with status 0.
func TestReapsAsPID1(t *testing.T) {
	testutil.RequireRoot(t)
	nsenter := testutil.RequireCommands(t, "nsenter")[0]
	bin := buildPause(t)
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	time.Sleep(100 * time.Millisecond)

	// sh exits at once, leaving sleep to pause, the namespace's init (sleep
	// must not hold the output pipe, or CombinedOutput would wait for it).
	orphan := exec.Command(nsenter, "-t", strconv.Itoa(pid), "-p", "--", "/bin/sh", "-c", "sleep 3 >/dev/null 2>&1 & exit 0")
	if out, err := orphan.CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	if n := len(children(t, pid)); n != 1 {
		out, _ := exec.Command("ps", "-eo", "pid,ppid,stat,cmd").Output()
		t.Fatalf("pause (%d) has %d children, want the orphaned sleep\n%s", pid, n, out)
	}
	deadline := time.Now().Add(13 * time.Second)
	for len(children(t, pid)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("children left 10 s after sleep should have ended: %v", children(t, pid))
		}
		time.Sleep(50 * time.Millisecond)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v, want exit 0; stderr %q", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "first process") {
		t.Errorf("pause did not see itself as PID 1: %q", stderr.String())
	}
}

// children lists the processes whose parent is pid, with their state
// (a zombie is "Z").
func children(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ")".
		rest := string(data[bytes.LastIndexByte(data, ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			found = append(found, s+" "+f[0])
		}
	}
	return found
}
