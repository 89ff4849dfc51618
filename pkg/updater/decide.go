// Package updater is neco-updater: the single leader, elected in etcd, that
// watches GitHub for new releases and steers the workers by writing the
// update request. NextAction decides what to do from a snapshot of the CD
// state; Updater.Run is the loop around it that reads, decides, acts (every
// write fenced by the leader key) and waits on etcd events.
package updater

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

// Kind is what the updater does next.
type Kind int

// Kinds of action.
const (
	Wait        Kind = iota
	NewRequest       // request Version on Servers
	Reconfigure      // re-request the same Version on a changed server set
	Stop             // halt the update until `neco recover`
)

func (k Kind) String() string {
	return [...]string{"wait", "new-request", "reconfigure", "stop"}[k]
}

// Action is a decision of NextAction.
type Action struct {
	Kind    Kind
	Version string
	Servers []int
	// Reason explains the action (the stop reason for Stop).
	Reason string
	// WakeAt, for Wait, is when the decision changes by the clock alone.
	WakeAt time.Time
}

// NextAction decides from a snapshot what the updater does at now.
func NextAction(s *storage.Snapshot, now time.Time) Action {
	cfg := s.Config
	req := s.Request
	if req == nil {
		switch {
		case s.Latest == "":
			return Action{Kind: Wait, Reason: "no release known yet"}
		case len(s.BootServers) == 0:
			return Action{Kind: Wait, Reason: "no boot server registered"}
		case !cfg.InReleaseWindow(now):
			return Action{Kind: Wait, Reason: "outside release-time " + cfg.ReleaseWindow.String(), WakeAt: nextMinute(now)}
		}
		return Action{Kind: NewRequest, Version: s.Latest, Servers: s.BootServers, Reason: "no update request yet"}
	}
	if req.Stop {
		return Action{Kind: Wait, Reason: "update stopped (" + req.StopReason + "); run neco recover"}
	}
	statuses := s.CurrentStatuses()
	var aborted []int
	for _, lrn := range req.Servers {
		if st := statuses[lrn]; st != nil && st.Cond == neco.CondAborted {
			aborted = append(aborted, lrn)
		}
	}
	if len(aborted) > 0 {
		var why []string
		for _, lrn := range aborted {
			st := statuses[lrn]
			why = append(why, fmt.Sprintf("boot server %d aborted at step %d (%s): %s", lrn, st.Step, st.StepName, st.Message))
		}
		return Action{Kind: Stop, Reason: strings.Join(why, "; ")}
	}
	var pending []int
	for _, lrn := range req.Servers {
		if st := statuses[lrn]; st == nil || st.Cond != neco.CondCompleted {
			pending = append(pending, lrn)
		}
	}
	deadline := req.StartedAt.Add(cfg.WorkerTimeout)
	if len(pending) > 0 && !now.Before(deadline) {
		return Action{Kind: Stop, Reason: fmt.Sprintf("boot servers %v did not complete version %s within worker-timeout %s", pending, req.Version, cfg.WorkerTimeout)}
	}
	if len(s.BootServers) > 0 && !slices.Equal(s.BootServers, req.Servers) {
		return Action{Kind: Reconfigure, Version: req.Version, Servers: s.BootServers,
			Reason: fmt.Sprintf("boot servers changed from %v to %v", req.Servers, s.BootServers)}
	}
	if len(pending) > 0 {
		return Action{Kind: Wait, Reason: fmt.Sprintf("updating to %s; waiting for %v", req.Version, pending), WakeAt: deadline}
	}
	if neco.Newer(s.Latest, req.Version) {
		if !cfg.InReleaseWindow(now) {
			return Action{Kind: Wait, Reason: fmt.Sprintf("release %s waits for release-time %s", s.Latest, cfg.ReleaseWindow), WakeAt: nextMinute(now)}
		}
		return Action{Kind: NewRequest, Version: s.Latest, Servers: s.BootServers, Reason: fmt.Sprintf("new release %s (running %s)", s.Latest, req.Version)}
	}
	return Action{Kind: Wait, Reason: "up to date at " + req.Version}
}

func nextMinute(t time.Time) time.Time { return t.Truncate(time.Minute).Add(time.Minute) }
