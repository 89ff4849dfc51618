package worker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ServiceManager restarts and inspects the services steps act on. The
// signatures match pkg/setup.Services, so its systemd and process managers
// serve here too.
type ServiceManager interface {
	Restart(ctx context.Context, name string) error
	Active(ctx context.Context, name string) (bool, error)
}

// Systemctl manages <name>.service with systemctl.
type Systemctl struct{}

// Restart implements ServiceManager; systemctl waits for the unit to be up.
func (Systemctl) Restart(ctx context.Context, name string) error {
	out, err := exec.CommandContext(ctx, "systemctl", "restart", name+".service").CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl restart %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Active implements ServiceManager.
func (Systemctl) Active(ctx context.Context, name string) (bool, error) {
	out, _ := exec.CommandContext(ctx, "systemctl", "is-active", name+".service").Output()
	return strings.TrimSpace(string(out)) == "active", nil
}

// writeIfChanged writes data to path atomically unless it already holds
// exactly data, and reports whether it wrote.
func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
