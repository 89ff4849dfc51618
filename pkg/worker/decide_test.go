package worker

import (
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/neco"
)

func TestDecide(t *testing.T) {
	const v1, v2 = "2025.03.01-1", "2025.03.10-2"
	req := &neco.UpdateRequest{ID: 9, Version: v2, Servers: []int{0, 1, 2}}
	stopped := &neco.UpdateRequest{ID: 9, Version: v2, Servers: []int{0, 1, 2}, Stop: true, StopReason: "server 1 aborted"}
	run := func(step int) *neco.UpdateStatus {
		return &neco.UpdateStatus{RequestID: 9, Step: step, Cond: neco.CondRunning}
	}
	done := &neco.UpdateStatus{RequestID: 9, Step: 4, Cond: neco.CondCompleted}
	aborted := &neco.UpdateStatus{RequestID: 9, Step: 2, Cond: neco.CondAborted, Message: "boom"}
	type S = map[int]*neco.UpdateStatus
	tests := []struct {
		name      string
		req       *neco.UpdateRequest
		statuses  S
		installed string
		env       neco.Env
		posted    int64
		want      Kind
		step      int
		reason    string
	}{
		{name: "no request", want: Wait},
		{name: "not in request", req: &neco.UpdateRequest{ID: 9, Version: v2, Servers: []int{1, 2}}, installed: v1, want: Wait, reason: "not in request"},
		{name: "stopped", req: stopped, installed: v1, want: Wait, reason: "stopped"},
		{name: "older installed", req: req, installed: v1, want: Install},
		{name: "nothing installed", req: req, installed: "", want: Install},
		{name: "test env never installs", req: req, installed: v1, env: neco.EnvTest, want: Begin},
		{name: "installed begins", req: req, installed: v2, want: Begin},
		{name: "other aborted waits", req: req, installed: v1, statuses: S{1: aborted}, want: Wait, reason: "boot server 1 aborted: boom"},
		{name: "own aborted waits", req: req, installed: v2, posted: 9, statuses: S{0: aborted}, want: Wait},
		{name: "barrier waits for missing", req: req, installed: v2, posted: 9, statuses: S{0: run(1), 1: run(1)}, want: Wait, reason: "waiting for boot server 2"},
		{name: "barrier waits for laggard", req: req, installed: v2, posted: 9, statuses: S{0: run(2), 1: run(1), 2: run(2)}, want: Wait, reason: "waiting for boot server 1"},
		{name: "barrier passes", req: req, installed: v2, posted: 9, statuses: S{0: run(1), 1: run(1), 2: run(1)}, want: RunStep, step: 1},
		{name: "others ahead", req: req, installed: v2, posted: 9, statuses: S{0: run(2), 1: run(3), 2: run(3)}, want: RunStep, step: 2},
		{name: "others completed", req: req, installed: v2, posted: 9, statuses: S{0: run(4), 1: done, 2: done}, want: RunStep, step: 4},
		{name: "completed", req: req, installed: v2, posted: 9, statuses: S{0: done}, want: Wait, reason: "completed"},
		{name: "crash detected", req: req, installed: v2, posted: 0, statuses: S{0: run(2), 1: run(2), 2: run(2)}, want: Abort, step: 2, reason: "restarted during step 2"},
		{name: "posted for an older request is a crash", req: req, installed: v2, posted: 8, statuses: S{0: run(1)}, want: Abort, step: 1},
		{name: "unknown step", req: req, installed: v2, posted: 9, statuses: S{0: run(7), 1: run(7), 2: run(7)}, want: Abort, step: 7, reason: "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.statuses
			if st == nil {
				st = S{}
			}
			got := Decide(View{Request: tt.req, Statuses: st, Self: 0, Installed: tt.installed, Env: tt.env, Posted: tt.posted, NumSteps: 4})
			if got.Kind != tt.want || got.Step != tt.step || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("Decide = %v step %d (%s), want %v step %d (reason containing %q)", got.Kind, got.Step, got.Reason, tt.want, tt.step, tt.reason)
			}
		})
	}
}
