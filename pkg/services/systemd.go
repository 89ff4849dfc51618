package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/fileutil"
)

// Systemd manages units through systemctl. Start writes units to UnitDir;
// a unit the neco package ships in /lib/systemd/system is used as it is
// (Enable). The zero value restarts, stops and inspects units.
type Systemd struct {
	UnitDir string
}

// systemctl runs systemctl with args; every call of systemctl goes
// through it. The error wraps the command's (an *exec.ExitError when
// systemctl ran and failed) and carries its output.
func systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// RenderUnit is the systemd unit file of u.
func RenderUnit(u Unit) string {
	q := make([]string, len(u.Command))
	for i, a := range u.Command {
		q[i] = strconv.Quote(a)
	}
	stop := u.StopTimeout
	if stop == 0 {
		stop = 30 * time.Second
	}
	return fmt.Sprintf(`# Written by neco setup; neco rewrites it when the cluster changes.
[Unit]
Description=%s
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=%s
Restart=always
RestartSec=5s
KillSignal=SIGTERM
TimeoutStopSec=%d
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, u.Description, strings.Join(q, " "), int(stop.Seconds()))
}

// Start writes the unit (when changed) and enables and starts it.
func (s *Systemd) Start(ctx context.Context, u Unit) error {
	path := filepath.Join(s.UnitDir, u.Name+".service")
	want := []byte(RenderUnit(u))
	cur, _ := os.ReadFile(path)
	changed := !bytes.Equal(cur, want)
	if changed {
		if err := fileutil.WriteAtomic(path, want, 0o644); err != nil {
			return err
		}
		if err := systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if err := systemctl(ctx, "enable", u.Name+".service"); err != nil {
		return err
	}
	if changed {
		return systemctl(ctx, "restart", u.Name+".service")
	}
	return systemctl(ctx, "start", u.Name+".service")
}

// Restart restarts name; systemctl waits until the unit is up.
func (s *Systemd) Restart(ctx context.Context, name string) error {
	return systemctl(ctx, "restart", name+".service")
}

// Stop stops name.
func (s *Systemd) Stop(ctx context.Context, name string) error {
	return systemctl(ctx, "stop", name+".service")
}

// Active reports whether name is active.
func (s *Systemd) Active(ctx context.Context, name string) (bool, error) {
	err := systemctl(ctx, "is-active", "--quiet", name+".service")
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

// Enable enables and starts a unit the neco package ships.
func (s *Systemd) Enable(ctx context.Context, name string) error {
	return systemctl(ctx, "enable", "--now", name+".service")
}
