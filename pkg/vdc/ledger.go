package vdc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Entry kinds of the ledger, one per thing create makes on the host.
const (
	EntryCgroup  = "cgroup"  // Name: cgroup path; Host: the machine whose group it is (in every hierarchy), if any
	EntryBridge  = "bridge"  // Name: link name; Host: the Network
	EntryLink    = "link"    // Name: veth (host end) or tap
	EntryNetns   = "netns"   // Name: namespace; Host: its owner
	EntryMount   = "mount"   // Path: mount point
	EntryProcess = "process" // Host, App, PID, Log
	EntryDone    = "done"    // create finished
)

// Entry is one line of the ledger. Entries are written before the thing
// they describe is made, so that a crash in between leaves an entry whose
// removal is a no-op rather than a thing nobody knows about.
type Entry struct {
	Kind    string `json:"kind"`
	Name    string `json:"name,omitempty"`
	Host    string `json:"host,omitempty"`
	App     string `json:"app,omitempty"`
	Path    string `json:"path,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Log     string `json:"log,omitempty"`
	Console string `json:"console,omitempty"`
}

// LedgerFile is the ledger's name in the state directory.
const LedgerFile = "ledger.jsonl"

type ledger struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

func openLedger(dir string) (*ledger, error) {
	p := filepath.Join(dir, LedgerFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vdc: ledger: %w", err)
	}
	return &ledger{f: f, path: p}, nil
}

// record appends e and syncs it to disk.
func (l *ledger) record(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("vdc: ledger: %w", err)
	}
	return l.f.Sync()
}

func (l *ledger) close() error { return l.f.Close() }

// readLedger returns the entries in order. A torn last line (a crash
// mid-write) is ignored; a missing ledger is empty.
func readLedger(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, LedgerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vdc: ledger: %w", err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
