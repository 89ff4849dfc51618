package sabakan

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestCheckTransition(t *testing.T) {
	allowed := map[[2]MachineState]bool{}
	for from, tos := range map[MachineState][]MachineState{
		StateUninitialized: {StateHealthy, StateRetiring},
		StateHealthy:       {StateUnhealthy, StateUnreachable, StateUpdating, StateRetiring},
		StateUnhealthy:     {StateHealthy, StateUnreachable, StateUpdating, StateRetiring},
		StateUnreachable:   {StateHealthy, StateUnhealthy, StateUpdating, StateRetiring},
		StateUpdating:      {StateUninitialized},
		StateRetiring:      {StateRetired},
		StateRetired:       {StateUninitialized},
	} {
		for _, to := range tos {
			allowed[[2]MachineState{from, to}] = true
		}
	}
	for _, from := range AllStates {
		for _, to := range AllStates {
			err := CheckTransition(from, to)
			want := from == to || allowed[[2]MachineState{from, to}]
			if (err == nil) != want {
				t.Errorf("%s → %s: err = %v, want allowed=%v", from, to, err, want)
			}
			if err != nil && !errors.Is(err, ErrConflict) {
				t.Errorf("%s → %s: err = %v, want ErrConflict", from, to, err)
			}
		}
	}
	if err := CheckTransition(StateHealthy, "broken"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown state: err = %v, want ErrBadRequest", err)
	}
}

func TestSetState(t *testing.T) {
	m := NewMachine(MachineSpec{Serial: "s1"}, testTime)
	later := testTime.Add(time.Hour)
	if changed, err := m.SetState(StateUninitialized, later); err != nil || changed {
		t.Errorf("same state: changed=%v err=%v, want a no-op", changed, err)
	}
	if !m.Status.Timestamp.Equal(testTime) {
		t.Error("a no-op moved the timestamp")
	}
	if changed, err := m.SetState(StateHealthy, later); err != nil || !changed {
		t.Fatalf("uninitialized → healthy: changed=%v err=%v", changed, err)
	}
	if m.Status.State != StateHealthy || !m.Status.Timestamp.Equal(later) {
		t.Errorf("status = %+v", m.Status)
	}
	if _, err := m.SetState(StateRetired, later); err == nil {
		t.Error("healthy → retired allowed")
	}
	if d := m.WithDuration(later.Add(90 * time.Second)).Status.Duration; d != 90 {
		t.Errorf("duration = %v, want 90", d)
	}
}

func TestMachineSpecValidate(t *testing.T) {
	valid := func() MachineSpec {
		return MachineSpec{Serial: "abc-123", Role: "cs", Labels: map[string]string{"product": "R640", "empty": ""}, BMC: MachineBMC{Type: "IPMI-2.0"}}
	}
	tests := []struct {
		name   string
		modify func(*MachineSpec)
		ok     bool
	}{
		{"valid", func(*MachineSpec) {}, true},
		{"empty serial", func(s *MachineSpec) { s.Serial = "" }, false},
		{"slash in serial", func(s *MachineSpec) { s.Serial = "a/b" }, false},
		{"space in serial", func(s *MachineSpec) { s.Serial = "a b" }, false},
		{"long serial", func(s *MachineSpec) { s.Serial = strings.Repeat("x", MaxSerialLength+1) }, false},
		{"bad role", func(s *MachineSpec) { s.Role = "-cs" }, false},
		{"empty role", func(s *MachineSpec) { s.Role = "" }, false},
		{"bad label name", func(s *MachineSpec) { s.Labels["a b"] = "x" }, false},
		{"bad label value", func(s *MachineSpec) { s.Labels["a"] = "x y" }, false},
		{"bad bmc type", func(s *MachineSpec) { s.BMC.Type = "IPMI 2.0" }, false},
		{"empty bmc type", func(s *MachineSpec) { s.BMC.Type = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.modify(&s)
			err := s.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadRequest) {
				t.Errorf("err = %v, want ErrBadRequest", err)
			}
		})
	}
}
