// Package services starts, stops and restarts the daemons of a boot server:
// through systemd (Systemd, the one wrapper of systemctl in the project) or,
// in tests and where PID 1 is not systemd, as detached processes
// (Processes). neco setup, join and init-local install units with it; the
// CD worker's steps restart units through it.
package services

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Unit is a long-running service: a name and the command that runs it.
type Unit struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Command     []string `json:"command"` // absolute path first
	// StopTimeout bounds a graceful stop (SIGTERM) before SIGKILL.
	StopTimeout time.Duration `json:"stop_timeout"`
}

// Manager starts and stops the daemons of a boot server. Production uses
// systemd; tests, and hosts whose PID 1 is not systemd, use Processes.
type Manager interface {
	// Start installs u and starts it; a unit already running with the same
	// definition is left alone, one with another definition is restarted.
	Start(ctx context.Context, u Unit) error
	// Restart stops and starts the installed unit name.
	Restart(ctx context.Context, name string) error
	// Stop stops name; stopping a stopped or unknown unit is no error.
	Stop(ctx context.Context, name string) error
	// Active reports whether name runs.
	Active(ctx context.Context, name string) (bool, error)
}

// New picks the service manager: kind "systemd", "process" (with its
// state under dir), or "" to use systemd when it is PID 1.
func New(kind, dir string) (Manager, error) {
	if kind == "" {
		kind = "process"
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			kind = "systemd"
		}
	}
	switch kind {
	case "systemd":
		return &Systemd{UnitDir: "/etc/systemd/system"}, nil
	case "process":
		return &Processes{Dir: dir}, nil
	}
	return nil, fmt.Errorf("unknown service manager %q (want systemd or process)", kind)
}

// Command resolves a program on PATH to an absolute path for a Unit.
func Command(name string, args ...string) ([]string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed (not found on PATH): install the neco package, or for a development tree run make build etcd vault", name)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	return append([]string{p}, args...), nil
}
