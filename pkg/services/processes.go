package services

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openneco/neco/pkg/fileutil"
)

// Processes runs units as detached processes (own session, output to
// Dir/<name>.log, PID in Dir/<name>.pid, definition in Dir/<name>.json).
// It is the service manager of tests and of hosts without systemd; it does
// not restart crashed processes.
type Processes struct {
	Dir string
}

func (p *Processes) file(name, ext string) string { return filepath.Join(p.Dir, name+"."+ext) }

// Start starts u unless it already runs with the same definition.
func (p *Processes) Start(ctx context.Context, u Unit) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	def, err := json.Marshal(u)
	if err != nil {
		return err
	}
	cur, _ := os.ReadFile(p.file(u.Name, "json"))
	if pid := p.pid(u.Name); pid > 0 {
		if bytes.Equal(cur, def) {
			return nil
		}
		if err := p.Stop(ctx, u.Name); err != nil {
			return err
		}
	}
	if err := fileutil.WriteAtomic(p.file(u.Name, "json"), def, 0o600); err != nil {
		return err
	}
	return p.spawn(u)
}

func (p *Processes) spawn(u Unit) error {
	logf, err := os.OpenFile(p.file(u.Name, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s: starting %s\n", time.Now().Format(time.RFC3339), u.Name)
	cmd := exec.Command(u.Command[0], u.Command[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", u.Name, err)
	}
	pid := cmd.Process.Pid
	// Reap the child if this process outlives it; otherwise init does.
	go cmd.Wait() //nolint:errcheck
	if err := fileutil.WriteAtomic(p.file(u.Name, "pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return err
	}
	// A daemon that exits at once (bad flag, port in use) is an error now,
	// not a mystery later.
	time.Sleep(300 * time.Millisecond)
	if !alive(pid) {
		return fmt.Errorf("%s exited right after start; see %s", u.Name, p.file(u.Name, "log"))
	}
	return nil
}

// Restart stops and starts the installed unit.
func (p *Processes) Restart(ctx context.Context, name string) error {
	def, err := os.ReadFile(p.file(name, "json"))
	if err != nil {
		return fmt.Errorf("restart %s: not installed: %w", name, err)
	}
	var u Unit
	if err := json.Unmarshal(def, &u); err != nil {
		return err
	}
	if err := p.Stop(ctx, name); err != nil {
		return err
	}
	return p.spawn(u)
}

// Stop sends SIGTERM and waits for the process to end, then SIGKILL.
func (p *Processes) Stop(ctx context.Context, name string) error {
	pid := p.pid(name)
	if pid <= 0 {
		return nil
	}
	timeout := 30 * time.Second
	if def, err := os.ReadFile(p.file(name, "json")); err == nil {
		var u Unit
		if json.Unmarshal(def, &u) == nil && u.StopTimeout > 0 {
			timeout = u.StopTimeout
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return os.Remove(p.file(name, "pid"))
}

// Active reports whether the recorded process of name runs.
func (p *Processes) Active(_ context.Context, name string) (bool, error) {
	return p.pid(name) > 0, nil
}

// pid returns the PID of name when that process is alive, else 0.
func (p *Processes) pid(name string) int {
	data, err := os.ReadFile(p.file(name, "pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !alive(pid) {
		return 0
	}
	return pid
}

// alive is true for a running process (not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
