// Package worker is neco-worker: one per boot server, it brings its server
// to the version the updater requests. It installs the requested neco
// package when another version is installed (the new binary then takes
// over), and runs the update steps in lock-step with the other boot
// servers: before step N runs anywhere, every server of the request has
// posted that it reached step N. Decide is the pure decision over a
// snapshot; Worker.Run reads, decides, acts and waits on etcd events.
package worker

import (
	"fmt"

	"github.com/openneco/neco/pkg/neco"
)

// Kind is what the worker does next.
type Kind int

// Kinds of action.
const (
	Wait    Kind = iota
	Install      // download and install Version, then hand over
	Begin        // post step 1 (the first barrier)
	RunStep      // run Step, then post the next barrier or completion
	Abort        // post an abort with Reason
)

func (k Kind) String() string {
	return [...]string{"wait", "install", "begin", "run-step", "abort"}[k]
}

// View is what Decide looks at: the request, the statuses that belong to
// it, and this worker's own facts.
type View struct {
	Request  *neco.UpdateRequest
	Statuses map[int]*neco.UpdateStatus // of Request's servers, for Request
	Self     int                        // this boot server's LRN
	// Installed is the installed neco package version.
	Installed string
	Env       neco.Env
	// Posted is the ID of the request this process has posted a status
	// for (0: none). A running status this process did not post means a
	// previous process died mid-update.
	Posted   int64
	NumSteps int
}

// Action is a decision of Decide.
type Action struct {
	Kind    Kind
	Version string
	Step    int // 1-based, for RunStep
	Reason  string
}

// Decide returns the next action of worker v.Self.
func Decide(v View) Action {
	req := v.Request
	switch {
	case req == nil:
		return Action{Kind: Wait, Reason: "no update request"}
	case !req.Has(v.Self):
		return Action{Kind: Wait, Reason: fmt.Sprintf("boot server %d is not in request %d", v.Self, req.ID)}
	case req.Stop:
		return Action{Kind: Wait, Reason: "update stopped: " + req.StopReason}
	}
	for _, lrn := range req.Servers {
		if st := v.Statuses[lrn]; st != nil && st.Cond == neco.CondAborted {
			return Action{Kind: Wait, Reason: fmt.Sprintf("boot server %d aborted: %s", lrn, st.Message)}
		}
	}
	own := v.Statuses[v.Self]
	if own == nil {
		if v.Installed != req.Version && v.Env != neco.EnvTest {
			return Action{Kind: Install, Version: req.Version, Reason: fmt.Sprintf("installed %s, requested %s", v.Installed, req.Version)}
		}
		return Action{Kind: Begin, Reason: "starting request " + fmt.Sprint(req.ID)}
	}
	switch own.Cond {
	case neco.CondCompleted:
		return Action{Kind: Wait, Reason: "completed " + req.Version}
	case neco.CondRunning:
	default:
		return Action{Kind: Wait, Reason: "status " + own.Cond.String()}
	}
	if v.Posted != req.ID {
		return Action{Kind: Abort, Step: own.Step, Reason: fmt.Sprintf("neco-worker restarted during step %d (%s): a previous run died mid-update", own.Step, own.StepName)}
	}
	if own.Step < 1 || own.Step > v.NumSteps {
		return Action{Kind: Abort, Step: own.Step, Reason: fmt.Sprintf("step %d does not exist in this worker (it has %d)", own.Step, v.NumSteps)}
	}
	for _, lrn := range req.Servers {
		st := v.Statuses[lrn]
		if st == nil || (st.Cond == neco.CondRunning && st.Step < own.Step) {
			return Action{Kind: Wait, Reason: fmt.Sprintf("barrier of step %d: waiting for boot server %d", own.Step, lrn)}
		}
	}
	return Action{Kind: RunStep, Step: own.Step}
}
