// Package statesetter turns what the failure detector sees into machine
// states in sabakan, which is what makes the data center self-healing: the
// Kubernetes engine reacts to those states. One boot server at a time (an
// etcd election) runs the loop; the decision is a pure function.
package statesetter

import (
	"strings"
	"time"

	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/sabakan"
)

// Snapshot is everything one decision looks at.
type Snapshot struct {
	Machines []sabakan.Machine
	// Members are the failure detector's members, matched to machines by
	// address: a member's address is its machine's first node address.
	Members []membership.Member
	// UnhealthySince remembers since when each machine has looked unhealthy;
	// Decide returns the updated map for the next round.
	UnhealthySince map[string]time.Time
	Now            time.Time
	// GracePeriod is how long a machine must look unhealthy before it is
	// marked so; short glitches (a unit restarting) do not flap states.
	GracePeriod time.Duration
}

// Change is one state to set.
type Change struct {
	Serial string               `json:"serial"`
	From   sabakan.MachineState `json:"from"`
	To     sabakan.MachineState `json:"to"`
	Reason string               `json:"reason"`
}

// observe returns the state a machine's member suggests and why.
func observe(m *membership.Member) (sabakan.MachineState, string) {
	switch {
	case m == nil:
		return sabakan.StateUnreachable, "not a member of the cluster"
	case m.Status != "alive":
		return sabakan.StateUnreachable, "member is " + m.Status
	}
	failed, ok := m.Tags[membership.TagFailedUnits]
	switch {
	case !ok:
		return sabakan.StateUnhealthy, "health not reported"
	case failed != "":
		return sabakan.StateUnhealthy, "failed units: " + strings.ReplaceAll(failed, ",", ", ")
	}
	return sabakan.StateHealthy, "alive and healthy"
}

// Decide returns the state changes to make and the next UnhealthySince.
//
// Machines that are updating, retiring or retired are left alone: people or
// other programs drive them. An uninitialized machine that has not joined yet
// stays uninitialized (it has not booted); once alive and healthy it becomes
// healthy. A transition the life-cycle forbids is never proposed.
func Decide(s Snapshot) ([]Change, map[string]time.Time) {
	byAddr := make(map[string]*membership.Member, len(s.Members))
	for i := range s.Members {
		byAddr[s.Members[i].Addr] = &s.Members[i]
	}
	since := map[string]time.Time{}
	var changes []Change
	for _, m := range s.Machines {
		cur := m.Status.State
		switch cur {
		case sabakan.StateUpdating, sabakan.StateRetiring, sabakan.StateRetired:
			continue
		}
		var member *membership.Member
		if len(m.Spec.IPv4) > 0 {
			member = byAddr[m.Spec.IPv4[0]]
		}
		want, reason := observe(member)
		if want == sabakan.StateUnhealthy {
			start, ok := s.UnhealthySince[m.Spec.Serial]
			if !ok {
				start = s.Now
			}
			since[m.Spec.Serial] = start
			if s.Now.Sub(start) < s.GracePeriod {
				continue
			}
		}
		if want == cur || sabakan.CheckTransition(cur, want) != nil {
			continue
		}
		changes = append(changes, Change{Serial: m.Spec.Serial, From: cur, To: want, Reason: reason})
	}
	return changes, since
}
