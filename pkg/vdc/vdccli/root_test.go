package vdccli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/cli"
)

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	root.SilenceUsage, root.SilenceErrors = true, true
	err := root.ExecuteContext(context.Background())
	if err != nil {
		out.WriteString(err.Error())
	}
	return out.String(), cli.Code(err)
}

func TestMenuCommand(t *testing.T) {
	dir := t.TempDir()
	out, code := run(t, "menu", "--out", dir, "--racks", "2", "--workers", "3", "--qemu", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if !strings.Contains(out, "8 nspawn nodes, 0 QEMU nodes") {
		t.Errorf("summary: %s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "machines.json"))
	if err != nil || strings.Count(string(b), `"serial"`) != 8 {
		t.Errorf("machines.json: %v\n%s", err, b)
	}
}

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown menu", []string{"menu", "--out", root, "--menu", "huge"}, cli.ExitUsage},
		{"bad numbers", []string{"menu", "--out", root, "--racks", "99"}, cli.ExitUsage},
		{"bad instance", []string{"destroy", "--name", "Bad-Name", "--state-root", root}, cli.ExitUsage},
		{"list unknown", []string{"list", "--name", "nope", "--state-root", root}, cli.ExitNotFound},
		{"exec unknown", []string{"exec", "--name", "nope", "--state-root", root, "core", "--", "true"}, cli.ExitNotFound},
		{"agent not found", []string{"menu", "--out", root, "--bgp-agent", "/nonexistent/agent"}, cli.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, code := run(t, tt.args...); code != tt.want {
				t.Errorf("exit %d, want %d: %s", code, tt.want, out)
			}
		})
	}
}
