package neco

import (
	"fmt"
	"slices"
	"time"
)

// UpdateRequest asks the workers of Servers to bring their boot servers to
// Version. The updater alone writes it (at status/current).
type UpdateRequest struct {
	// ID identifies this request: the etcd revision the updater decided at.
	// Each new request, reconfiguration included, has a larger ID, and a
	// worker's status belongs to the request whose ID it carries.
	ID      int64  `json:"id"`
	Version string `json:"version"`
	// Servers are the LRNs of the boot servers taking part, ascending.
	Servers []int `json:"servers"`
	// Stop halts the update; only `neco recover` clears it.
	Stop       bool      `json:"stop"`
	StopReason string    `json:"stop_reason,omitempty"`
	StartedAt  time.Time `json:"started_at"`
}

// Has reports whether lrn takes part in r.
func (r *UpdateRequest) Has(lrn int) bool { return slices.Contains(r.Servers, lrn) }

// Index is the position of lrn in r.Servers, or -1.
func (r *UpdateRequest) Index(lrn int) int { return slices.Index(r.Servers, lrn) }

// Cond is the condition of a worker for a request.
type Cond int

// Conditions, numbered as in the reference.
const (
	CondNotRunning Cond = iota
	CondRunning
	CondAborted
	CondCompleted
)

func (c Cond) String() string {
	switch c {
	case CondNotRunning:
		return "not-running"
	case CondRunning:
		return "running"
	case CondAborted:
		return "aborted"
	case CondCompleted:
		return "completed"
	}
	return fmt.Sprintf("cond(%d)", int(c))
}

// UpdateStatus is what the worker of one boot server reports at
// status/bootservers/<LRN>.
type UpdateStatus struct {
	// RequestID is the UpdateRequest.ID this status is about.
	RequestID int64  `json:"request_id"`
	Version   string `json:"version"`
	// Step is 1-based: with Cond running, the worker has reached the barrier
	// of this step or is running it; with Cond completed, the last step.
	Step     int    `json:"step"`
	StepName string `json:"step_name,omitempty"`
	Cond     Cond   `json:"cond"`
	// Message says why the worker aborted.
	Message   string    `json:"message,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// StatusesFor keeps the statuses of req's servers that belong to req.
func StatusesFor(req *UpdateRequest, all map[int]*UpdateStatus) map[int]*UpdateStatus {
	out := map[int]*UpdateStatus{}
	if req == nil {
		return out
	}
	for _, lrn := range req.Servers {
		if st := all[lrn]; st != nil && st.RequestID == req.ID {
			out[lrn] = st
		}
	}
	return out
}

// ContentsRecord says that a cluster-wide upload (contents/<name>) was done
// for a version.
type ContentsRecord struct {
	Version string `json:"version"`
	Success bool   `json:"success"`
}
