package bird

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
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Daemon describes how to run one BIRD: its binary and the files it uses.
// A BIRD started by Start runs in a session of its own, so it outlives the
// program that started it; Find adopts it again after that program
// restarts. Routes therefore survive a restart of the supervisor.
type Daemon struct {
	// Binary is the BIRD executable; "" means "bird" on PATH.
	Binary string
	// Config, Socket and PIDFile are BIRD's -c, -s and -P.
	Config  string
	Socket  string
	PIDFile string
	// Output receives BIRD's stdout and stderr (early start-up errors);
	// "" discards them.
	Output string
	// Realtime gives BIRD real-time scheduling (SCHED_RR) and protects it
	// from the OOM killer, so BFD keeps its timing under load. Failures to
	// do so are returned by Start but BIRD keeps running.
	Realtime bool
	// Prefix is a command that runs BIRD, such as "ip netns exec <ns>";
	// it must exec BIRD in its own process.
	Prefix []string
}

// Client returns a client of the daemon's control socket.
func (d *Daemon) Client() *Client { return &Client{Socket: d.Socket} }

func (d *Daemon) binary() string {
	if d.Binary == "" {
		return "bird"
	}
	return d.Binary
}

// Process is a running BIRD.
type Process struct {
	PID  int
	done chan struct{}
	// Adopted is true when the process was found running, not started.
	Adopted bool
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Alive reports whether the process still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop terminates the process and waits up to timeout for it to exit.
// BIRD removes its kernel routes when it stops this way.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("bird: stop %d: %w", p.PID, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		syscall.Kill(p.PID, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("bird: %d did not stop within %s and was killed", p.PID, timeout)
	}
}

// ErrNotRunning is returned by Find when no BIRD of this daemon runs.
var ErrNotRunning = errors.New("bird: not running")

// Find adopts a BIRD that already runs with this daemon's PID file and
// control socket, for example one started before the supervisor
// restarted. It returns ErrNotRunning if there is none.
func (d *Daemon) Find(ctx context.Context) (*Process, error) {
	b, err := os.ReadFile(d.PIDFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil, ErrNotRunning
	}
	if !d.isOurs(pid) {
		return nil, ErrNotRunning
	}
	if err := d.Client().Ping(ctx); err != nil {
		return nil, fmt.Errorf("bird: process %d runs but does not answer on %s: %w", pid, d.Socket, err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("bird: watch process %d: %w", pid, err)
	}
	p := &Process{PID: pid, done: make(chan struct{}), Adopted: true}
	go func() {
		defer close(p.done)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return p, nil
}

// isOurs reports whether pid is a BIRD process using this daemon's socket.
func (d *Daemon) isOurs(pid int) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 || filepath.Base(string(args[0])) != filepath.Base(d.binary()) {
		return false
	}
	for i := 0; i+1 < len(args); i++ {
		if string(args[i]) == "-s" && string(args[i+1]) == d.Socket {
			return true
		}
	}
	return false
}

// Start runs BIRD with the daemon's configuration file and waits until it
// answers on its control socket. The returned error may be a *TuneError
// together with a running process: BIRD runs, but without real-time
// priority or OOM protection.
func (d *Daemon) Start(ctx context.Context) (*Process, error) { return d.start(ctx, false) }

// StartRecovery is Start with BIRD's graceful restart recovery (-R), for a
// BIRD that replaces one which died and left its routes behind, in the
// kernel and with its BGP neighbours: protocols configured for graceful
// restart then keep those routes until BGP has converged again (kernel
// protocol "graceful restart", BGP End-of-RIB) instead of starting afresh.
func (d *Daemon) StartRecovery(ctx context.Context) (*Process, error) { return d.start(ctx, true) }

func (d *Daemon) start(ctx context.Context, recovery bool) (*Process, error) {
	args := []string{"-f", "-c", d.Config, "-s", d.Socket, "-P", d.PIDFile}
	if recovery {
		args = append(args, "-R")
	}
	argv := append(append(append([]string{}, d.Prefix...), d.binary()), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if d.Output != "" {
		f, err := os.OpenFile(d.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("bird: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bird: start: %w", err)
	}
	p := &Process{PID: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := d.Client().Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("bird: exited during start-up (see %s): %s", d.outputName(), cmd.ProcessState)
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return nil, ctx.Err()
		case <-deadline:
			p.Stop(5 * time.Second)
			return nil, fmt.Errorf("bird: no answer on %s within 15s: %w", d.Socket, err)
		case <-tick.C:
		}
	}
	if d.Realtime {
		if err := Tune(p.PID); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (d *Daemon) outputName() string {
	if d.Output == "" {
		return "its log"
	}
	return d.Output
}

// TuneError reports that BIRD runs but did not get real-time priority, OOM
// protection, or both. Each field says why one of them failed and is nil
// when that one succeeded.
type TuneError struct {
	// Realtime is why SCHED_RR was refused (for one or more threads).
	Realtime error
	// OOM is why oom_score_adj -1000 was refused.
	OOM error
}

func (e *TuneError) Error() string {
	var parts []string
	if e.Realtime != nil {
		parts = append(parts, "no real-time priority: "+e.Realtime.Error())
	}
	if e.OOM != nil {
		parts = append(parts, "no OOM protection: "+e.OOM.Error())
	}
	return "bird: tune: " + strings.Join(parts, "; ")
}

// Unwrap returns the errors that are set.
func (e *TuneError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Realtime, e.OOM} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Tune gives pid (and all its threads) round-robin real-time priority 10
// and the lowest OOM score, as the reference deployment runs BIRD. It tries
// both; a *TuneError says which failed and why.
func Tune(pid int) error {
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	tids := []int{pid}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil && tid != pid {
			tids = append(tids, tid)
		}
	}
	var rt []error
	for _, tid := range tids {
		attr := &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 10}
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
			rt = append(rt, fmt.Errorf("thread %d: %w", tid, err))
		}
	}
	te := &TuneError{Realtime: errors.Join(rt...)}
	if err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "oom_score_adj"), []byte("-1000"), 0); err != nil {
		te.OOM = err
	}
	if te.Realtime != nil || te.OOM != nil {
		return te
	}
	return nil
}
