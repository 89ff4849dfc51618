package deb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/testutil"
)

// TestInstalledVersionStates reads dpkg's status database as dpkg leaves
// it mid-installation.
func TestInstalledVersionStates(t *testing.T) {
	testutil.RequireCommands(t, "dpkg-query")
	r := deb.RootInstaller{Root: t.TempDir()}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	entry := func(status string) string {
		return "Package: neco\nStatus: install ok " + status + "\nArchitecture: amd64\nVersion: 2025.03.10-2\nMaintainer: x <x@example.org>\nDescription: x\n"
	}
	tests := []struct {
		status string
		want   string
		err    error
	}{
		{"installed", "2025.03.10-2", nil},
		{"half-configured", "", deb.ErrInProgress},
		{"unpacked", "", deb.ErrInProgress},
		{"config-files", "", deb.ErrNotInstalled},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(r.AdminDir(), "status"), []byte(entry(tt.status)), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := r.InstalledVersion(context.Background(), "neco")
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("InstalledVersion = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
