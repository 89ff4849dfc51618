// Package status gathers what the engine decides from: each node's
// services (over SSH, one command per node, all nodes in parallel with a
// bounded time each), the Kubernetes etcd cluster's members and health,
// and the Kubernetes objects the engine maintains.
package status

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/units"
)

// NodeExec runs commands and writes files on nodes (nodeexec.Pool).
type NodeExec interface {
	Run(ctx context.Context, addr, cmd string, stdin io.Reader) ([]byte, error)
	WriteFile(ctx context.Context, addr, path string, data []byte, mode os.FileMode) error
	Install(ctx context.Context, addr, path string, src io.Reader, size int64, sha256hex string, progress func(done, total int64)) error
}

// Record is what a node keeps about a unit the engine started
// (units.StateFile).
type Record struct {
	Hash         string    `json:"hash"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Started      time.Time `json:"started"`
}

// NodeScript prints a node's services: for each, the unit's state and the
// record of its last start; then whether etcd data exists.
func NodeScript() string {
	var b strings.Builder
	for _, s := range cke.AllServices {
		fmt.Fprintf(&b, "printf 'unit %s %%s\\n' \"$(systemctl is-active %s 2>/dev/null)\"\n", s, s.Unit())
		f := units.StateFile(s)
		fmt.Fprintf(&b, "[ -r %s ] && printf 'record %s %%s\\n' \"$(tr -d '\\n' < %s)\"\n", f, s, f)
	}
	fmt.Fprintf(&b, "[ -d %s/member ] && echo etcd-data\necho end\n", units.EtcdDataDir)
	return b.String()
}

// ParseNode reads NodeScript's output. Unknown lines are errors: they mean
// the node runs something else than the engine expects.
func ParseNode(out []byte) (*cke.NodeStatus, error) {
	st := &cke.NodeStatus{Reachable: true, Services: map[cke.Service]cke.ServiceStatus{}}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	complete := false
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "unit", "record":
			name, value, _ := strings.Cut(rest, " ")
			s := cke.Service(name)
			if !known(s) {
				return nil, fmt.Errorf("status: unknown service in %q", line)
			}
			ss := st.Services[s]
			if kind == "unit" {
				ss.Running = value == "active" || value == "reloading"
			} else {
				var r Record
				if err := json.Unmarshal([]byte(value), &r); err != nil {
					return nil, fmt.Errorf("status: record of %s: %w", s, err)
				}
				ss.Hash, ss.CertNotAfter = r.Hash, r.CertNotAfter
			}
			st.Services[s] = ss
		case "etcd-data":
			st.EtcdData = true
		case "end":
			complete = true
		default:
			return nil, fmt.Errorf("status: unexpected line %q", line)
		}
	}
	if !complete {
		return nil, fmt.Errorf("status: output ends early")
	}
	return st, nil
}

func known(s cke.Service) bool {
	for _, k := range cke.AllServices {
		if k == s {
			return true
		}
	}
	return false
}

// Nodes gathers the status of addrs in parallel, each bounded by timeout;
// a node that does not answer in time is unreachable.
func Nodes(ctx context.Context, exec NodeExec, addrs []string, timeout time.Duration) map[string]*cke.NodeStatus {
	out := make(map[string]*cke.NodeStatus, len(addrs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	script := NodeScript()
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var st *cke.NodeStatus
			data, err := exec.Run(ctx, addr, script, nil)
			if err == nil {
				st, err = ParseNode(data)
			}
			if err != nil {
				st = &cke.NodeStatus{Error: err.Error()}
			}
			mu.Lock()
			out[addr] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
