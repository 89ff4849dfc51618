package statesetter

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/membership"
	"github.com/openneco/neco/pkg/sabakan"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func machine(serial, addr string, state sabakan.MachineState) sabakan.Machine {
	return sabakan.Machine{
		Spec:   sabakan.MachineSpec{Serial: serial, IPv4: []string{addr}},
		Status: sabakan.MachineStatus{State: state},
	}
}

func member(addr, status, failed string, reported bool) membership.Member {
	tags := map[string]string{}
	if reported {
		tags[membership.TagFailedUnits] = failed
	}
	return membership.Member{Name: addr, Addr: addr, Status: status, Tags: tags}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		state   sabakan.MachineState
		member  *membership.Member
		since   time.Duration // how long it has looked unhealthy; -1 never
		want    sabakan.MachineState
		changed bool
	}{
		{"new machine not booted yet", sabakan.StateUninitialized, nil, -1, "", false},
		{"new machine up and healthy", sabakan.StateUninitialized, ptr(member("a", "alive", "", true)), -1, sabakan.StateHealthy, true},
		{"new machine up with failed units", sabakan.StateUninitialized, ptr(member("a", "alive", "x.service", true)), time.Hour, "", false},
		{"healthy stays healthy", sabakan.StateHealthy, ptr(member("a", "alive", "", true)), -1, "", false},
		{"healthy machine disappears", sabakan.StateHealthy, nil, -1, sabakan.StateUnreachable, true},
		{"healthy machine fails", sabakan.StateHealthy, ptr(member("a", "failed", "", true)), -1, sabakan.StateUnreachable, true},
		{"healthy machine leaves", sabakan.StateHealthy, ptr(member("a", "left", "", true)), -1, sabakan.StateUnreachable, true},
		{"failed units within grace", sabakan.StateHealthy, ptr(member("a", "alive", "x.service", true)), time.Second, "", false},
		{"failed units past grace", sabakan.StateHealthy, ptr(member("a", "alive", "x.service", true)), time.Hour, sabakan.StateUnhealthy, true},
		{"health not reported past grace", sabakan.StateHealthy, ptr(member("a", "alive", "", false)), time.Hour, sabakan.StateUnhealthy, true},
		{"unhealthy recovers", sabakan.StateUnhealthy, ptr(member("a", "alive", "", true)), -1, sabakan.StateHealthy, true},
		{"unreachable comes back", sabakan.StateUnreachable, ptr(member("a", "alive", "", true)), -1, sabakan.StateHealthy, true},
		{"unreachable comes back unhealthy", sabakan.StateUnreachable, ptr(member("a", "alive", "x", true)), time.Hour, sabakan.StateUnhealthy, true},
		{"updating is left alone", sabakan.StateUpdating, nil, -1, "", false},
		{"retiring is left alone", sabakan.StateRetiring, ptr(member("a", "alive", "", true)), -1, "", false},
		{"retired is left alone", sabakan.StateRetired, nil, -1, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := Snapshot{
				Machines:       []sabakan.Machine{machine("s1", "a", tt.state)},
				UnhealthySince: map[string]time.Time{},
				Now:            now,
				GracePeriod:    time.Minute,
			}
			if tt.member != nil {
				snap.Members = []membership.Member{*tt.member}
			}
			if tt.since >= 0 {
				snap.UnhealthySince["s1"] = now.Add(-tt.since)
			}
			changes, _ := Decide(snap)
			if !tt.changed {
				if len(changes) != 0 {
					t.Errorf("changes = %+v, want none", changes)
				}
				return
			}
			if len(changes) != 1 || changes[0].To != tt.want || changes[0].From != tt.state || changes[0].Reason == "" {
				t.Errorf("changes = %+v, want %s → %s", changes, tt.state, tt.want)
			}
		})
	}
}

func TestDecideTracksUnhealthySince(t *testing.T) {
	snap := Snapshot{
		Machines: []sabakan.Machine{
			machine("sick", "a", sabakan.StateHealthy),
			machine("fine", "b", sabakan.StateHealthy),
		},
		Members:        []membership.Member{member("a", "alive", "x.service", true), member("b", "alive", "", true)},
		UnhealthySince: map[string]time.Time{"fine": now.Add(-time.Hour)},
		Now:            now,
		GracePeriod:    time.Minute,
	}
	changes, since := Decide(snap)
	if len(changes) != 0 {
		t.Errorf("first sighting changed state: %+v", changes)
	}
	if got := slices.Sorted(maps.Keys(since)); !slices.Equal(got, []string{"sick"}) {
		t.Errorf("tracked %v, want only the sick machine (recovered ones are forgotten)", got)
	}
	snap.UnhealthySince, snap.Now = since, now.Add(2*time.Minute)
	changes, _ = Decide(snap)
	if len(changes) != 1 || changes[0].Serial != "sick" || changes[0].To != sabakan.StateUnhealthy {
		t.Errorf("after the grace period: %+v", changes)
	}
}

func ptr[T any](v T) *T { return &v }
