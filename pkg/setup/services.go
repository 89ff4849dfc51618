package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// Unit is a long-running service: a name and the command that runs it.
type Unit struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Command     []string `json:"command"` // absolute path first
	// StopTimeout bounds a graceful stop (SIGTERM) before SIGKILL.
	StopTimeout time.Duration `json:"stop_timeout"`
}

// Services starts and stops the daemons of a boot server. Production uses
// systemd; tests, and hosts whose PID 1 is not systemd, use Processes.
type Services interface {
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

// NewServices picks the service manager: kind "systemd", "process" (with
// its state under dir), or "" to use systemd when it is PID 1.
func NewServices(kind, dir string) (Services, error) {
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

// Systemd manages units through systemctl. Units are written to UnitDir;
// a unit the neco package ships in /lib/systemd/system is used as it is.
type Systemd struct {
	UnitDir string
}

func (s *Systemd) systemctl(ctx context.Context, args ...string) error {
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
		if err := s.systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if err := s.systemctl(ctx, "enable", u.Name+".service"); err != nil {
		return err
	}
	if changed {
		return s.systemctl(ctx, "restart", u.Name+".service")
	}
	return s.systemctl(ctx, "start", u.Name+".service")
}

// Restart restarts name.
func (s *Systemd) Restart(ctx context.Context, name string) error {
	return s.systemctl(ctx, "restart", name+".service")
}

// Stop stops name.
func (s *Systemd) Stop(ctx context.Context, name string) error {
	return s.systemctl(ctx, "stop", name+".service")
}

// Active reports whether name is active.
func (s *Systemd) Active(ctx context.Context, name string) (bool, error) {
	err := exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", name+".service").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

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

// Enable enables and starts a unit the neco package ships.
func (s *Systemd) Enable(ctx context.Context, name string) error {
	return s.systemctl(ctx, "enable", "--now", name+".service")
}
