package bgp

import (
	"fmt"
	"net/netip"
	"strings"
)

// Session is the state of one BGP session with a ToR.
type Session struct {
	// Name is the BIRD protocol name, "tor1" or "tor2".
	Name string     `json:"name"`
	Peer netip.Addr `json:"peer"`
	// State is BIRD's BGP state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established ("" when BIRD does not know the protocol).
	State string `json:"state"`
	// BFD is the state of the BFD session to the peer: Up, Down, Init,
	// AdminDown, or "" when there is none.
	BFD string `json:"bfd"`
}

// Established reports whether the session is up.
func (s Session) Established() bool { return s.State == "Established" }

// Snapshot is what readiness is decided on, read at one moment.
type Snapshot struct {
	// BIRDRunning is whether BIRD answers on its control socket.
	BIRDRunning bool `json:"bird-running"`
	// Sessions are the ToR sessions, in ToR order.
	Sessions []Session `json:"sessions"`
	// DefaultRoutePaths is the number of next hops of the default route
	// BIRD installed in the kernel's main table (0: none).
	DefaultRoutePaths int `json:"default-route-paths"`
}

// Readiness is the verdict on a snapshot.
type Readiness struct {
	// Ready: at least one ToR session is established and a default route
	// from the ToRs is in the kernel.
	Ready bool `json:"ready"`
	// Degraded: ready, but without full redundancy (a session or BFD down,
	// or the default route on fewer paths than established sessions).
	Degraded bool `json:"degraded"`
	// Reason explains a verdict other than ready and not degraded.
	Reason string `json:"reason,omitempty"`
}

// Decide turns a snapshot into a readiness verdict.
func Decide(s Snapshot) Readiness {
	if !s.BIRDRunning {
		return Readiness{Reason: "BIRD is not running"}
	}
	var up, down []string
	for _, ss := range s.Sessions {
		if ss.Established() {
			up = append(up, ss.Name)
		} else {
			state := ss.State
			if state == "" {
				state = "unknown"
			}
			down = append(down, fmt.Sprintf("%s is %s", ss.Name, state))
		}
	}
	switch {
	case len(s.Sessions) == 0:
		return Readiness{Reason: "no ToR sessions are configured"}
	case len(up) == 0:
		return Readiness{Reason: "no ToR session is established: " + strings.Join(down, ", ")}
	case s.DefaultRoutePaths == 0:
		return Readiness{Reason: "no default route from the ToRs in the kernel"}
	}
	var problems []string
	problems = append(problems, down...)
	for _, ss := range s.Sessions {
		if ss.Established() && ss.BFD != "Up" {
			bfd := ss.BFD
			if bfd == "" {
				bfd = "missing"
			}
			problems = append(problems, fmt.Sprintf("BFD to %s is %s", ss.Name, bfd))
		}
	}
	if s.DefaultRoutePaths < len(up) {
		problems = append(problems, fmt.Sprintf("the default route has %d of %d paths", s.DefaultRoutePaths, len(up)))
	}
	if len(problems) > 0 {
		return Readiness{Ready: true, Degraded: true, Reason: strings.Join(problems, "; ")}
	}
	return Readiness{Ready: true}
}
