package worker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/openneco/neco/pkg/testutil"
)

// daemonProc is a server process the worker tests start, stop and restart
// (the etcd and Vault of a simulated boot server). Its output is appended
// to dir/log, and it dies with the test binary.
type daemonProc struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has ended
}

// launch starts bin with args, its log in dir.
func (d *daemonProc) launch(bin, dir string, args ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cmd := exec.Command(bin, args...)
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	testutil.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	d.cmd, d.exited = cmd, exited
	return nil
}

// stopWithin sends SIGTERM and waits for the process to end, killing it
// after grace.
func (d *daemonProc) stopWithin(grace time.Duration) {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

func (d *daemonProc) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}
