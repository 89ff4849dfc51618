package nodeexec

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/nodeexec/sshdtest"
)

// The sshd of these tests runs on this machine: a node's files are local
// files, and its processes local processes.

func config(srv *sshdtest.Server) Config {
	return Config{User: srv.User, Signer: srv.Signer, HostKeys: &MemoryHostKeys{}}
}

func dialT(t *testing.T, srv *sshdtest.Server, cfg Config) *Client {
	t.Helper()
	c, err := Dial(t.Context(), srv.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds, failing the test after a minute:
// generous, as this machine is often loaded.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running reports whether a process has arg among its arguments.
func running(arg string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				return true
			}
		}
	}
	return false
}

// uniqueSleep is an argument for sleep that no other test uses: its
// process can be found.
func uniqueSleep(t *testing.T) string {
	return "600." + strconv.FormatInt(time.Now().UnixNano()%1e9, 10) + strconv.Itoa(len(t.Name()))
}

// waitErr waits for the error of a call running in the background, failing
// the test if it takes a minute.
func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Minute):
		t.Fatal("no result after a minute")
		return nil
	}
}

func ctxT(t *testing.T) context.Context { return t.Context() }
