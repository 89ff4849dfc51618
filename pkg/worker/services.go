package worker

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
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
