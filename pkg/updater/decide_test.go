package updater

import (
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

func TestNextAction(t *testing.T) {
	now := time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC) // a Monday
	const v1, v2 = "2025.03.01-1", "2025.03.10-2"
	req := func(v string, stop bool, servers ...int) *neco.UpdateRequest {
		return &neco.UpdateRequest{ID: 7, Version: v, Servers: servers, Stop: stop, StopReason: "earlier", StartedAt: now.Add(-10 * time.Minute)}
	}
	st := func(cond neco.Cond, step int) *neco.UpdateStatus {
		return &neco.UpdateStatus{RequestID: 7, Version: v1, Step: step, StepName: "sabakan-contents", Cond: cond, Message: "upload failed"}
	}
	done := map[int]*neco.UpdateStatus{0: st(neco.CondCompleted, 4), 1: st(neco.CondCompleted, 4), 2: st(neco.CondCompleted, 4)}
	tests := []struct {
		name     string
		latest   string
		req      *neco.UpdateRequest
		statuses map[int]*neco.UpdateStatus
		servers  []int
		config   map[string]string
		now      time.Time
		want     Kind
		version  string
		reason   string
	}{
		{name: "nothing known", servers: []int{0, 1, 2}, want: Wait, reason: "no release"},
		{name: "no boot servers", latest: v1, want: Wait, reason: "no boot server"},
		{name: "first request", latest: v1, servers: []int{0, 1, 2}, want: NewRequest, version: v1},
		{name: "first request outside window", latest: v1, servers: []int{0, 1, 2}, config: map[string]string{neco.KeyReleaseTime: "* 0-8 * * *"}, want: Wait, reason: "outside release-time"},
		{name: "stopped waits for recover", latest: v2, req: req(v1, true, 0, 1, 2), servers: []int{0, 1}, want: Wait, reason: "neco recover"},
		{name: "abort stops", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2},
			statuses: map[int]*neco.UpdateStatus{0: st(neco.CondRunning, 4), 1: st(neco.CondAborted, 3)}, want: Stop, reason: "boot server 1 aborted at step 3 (sabakan-contents): upload failed"},
		{name: "abort of another request ignored", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2},
			statuses: map[int]*neco.UpdateStatus{1: {RequestID: 6, Cond: neco.CondAborted}}, want: Wait, reason: "waiting for [0 1 2]"},
		{name: "in progress", latest: v2, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2},
			statuses: map[int]*neco.UpdateStatus{0: st(neco.CondCompleted, 4), 1: st(neco.CondRunning, 2)}, want: Wait, reason: "waiting for [1 2]"},
		{name: "timeout stops", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2}, config: map[string]string{neco.KeyWorkerTimeout: "5m"},
			statuses: map[int]*neco.UpdateStatus{0: st(neco.CondCompleted, 4)}, want: Stop, reason: "[1 2] did not complete"},
		{name: "completed servers do not time out", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2}, config: map[string]string{neco.KeyWorkerTimeout: "5m"},
			statuses: done, want: Wait, reason: "up to date"},
		{name: "server added reconfigures mid-update", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2, 3}, want: Reconfigure, version: v1, reason: "[0 1 2] to [0 1 2 3]"},
		{name: "server removed reconfigures", latest: v1, req: req(v1, false, 0, 1, 2), servers: []int{0, 2}, statuses: done, want: Reconfigure, version: v1},
		{name: "all servers unregistered keeps the request", latest: v1, req: req(v1, false, 0, 1, 2), statuses: done, want: Wait},
		{name: "new release after completion", latest: v2, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2}, statuses: done, want: NewRequest, version: v2},
		{name: "new release waits for window", latest: v2, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2}, statuses: done,
			config: map[string]string{neco.KeyReleaseTime: "* 9 * * *", neco.KeyReleaseTimeZone: "Asia/Tokyo"}, want: Wait, reason: "waits for release-time"},
		{name: "new release inside window", latest: v2, req: req(v1, false, 0, 1, 2), servers: []int{0, 1, 2}, statuses: done,
			config: map[string]string{neco.KeyReleaseTime: "* 19 * * 1-5", neco.KeyReleaseTimeZone: "Asia/Tokyo"}, want: NewRequest, version: v2},
		{name: "older latest never downgrades", latest: v1, req: req(v2, false, 0, 1, 2), servers: []int{0, 1, 2}, statuses: done, want: Wait},
		{name: "test env version", latest: neco.TestVersion, req: req(v2, false, 0, 1, 2), servers: []int{0, 1, 2}, statuses: done, want: NewRequest, version: neco.TestVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := &storage.Snapshot{Latest: tt.latest, Request: tt.req, Statuses: tt.statuses, BootServers: tt.servers, Config: neco.ParseConfig(tt.config)}
			if snap.Statuses == nil {
				snap.Statuses = map[int]*neco.UpdateStatus{}
			}
			got := NextAction(snap, now)
			if got.Kind != tt.want || got.Version != tt.version || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("NextAction = %v %q (%s), want %v %q (reason containing %q)", got.Kind, got.Version, got.Reason, tt.want, tt.version, tt.reason)
			}
			if got.Kind == NewRequest || got.Kind == Reconfigure {
				if len(got.Servers) != len(tt.servers) {
					t.Errorf("servers = %v, want %v", got.Servers, tt.servers)
				}
			}
		})
	}
}
