package sshdtest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

const sigCont = syscall.SIGCONT

// proc is a process, held by a pidfd (os.Process on Linux), so a signal
// never reaches another process that reused its PID.
type proc struct {
	pid   int
	start string // start time, from /proc/PID/stat
	p     *os.Process
}

func (p proc) signal(sig syscall.Signal) { _ = p.p.Signal(sig) }

// stat returns the parent PID and start time of pid.
func stat(pid int) (ppid int, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid … with starttime the 22nd field; comm may hold
	// anything, so fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, "", false
	}
	return ppid, string(f[19]), true
}

// children returns the processes whose parent is in parents.
func children(parents map[int]bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parents[pid] {
			continue
		}
		if ppid, _, ok := stat(pid); ok && parents[ppid] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// freezeTree stops (SIGSTOP) root and all its descendants, passing over
// the tree until no new process appears: a stopped process cannot fork.
func freezeTree(root int) []proc {
	var procs []proc
	inTree := map[int]bool{}
	grab := func(pid int) {
		_, start, ok := stat(pid)
		if !ok {
			return
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			return
		}
		// Same start time after taking the handle: the same process.
		if _, again, ok := stat(pid); !ok || again != start {
			p.Release()
			return
		}
		_ = p.Signal(syscall.SIGSTOP)
		inTree[pid] = true
		procs = append(procs, proc{pid: pid, start: start, p: p})
	}
	grab(root)
	// Each pass stops the children of stopped processes; a tree deeper
	// than this does not come from sshd.
	for range 100 {
		pids := children(inTree)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			grab(pid)
		}
	}
	return procs
}

// killTree kills root and all its descendants.
func killTree(root int) {
	for _, p := range freezeTree(root) {
		p.signal(syscall.SIGKILL)
		p.p.Release()
	}
}
