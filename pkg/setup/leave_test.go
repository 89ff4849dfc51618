package setup

import "testing"

func TestCheckLeave(t *testing.T) {
	tests := []struct {
		name           string
		members        int
		alive, force   bool
		wantRefusedErr bool
	}{
		{"four members, up", 4, true, false, false},
		{"three members, up", 3, true, false, true},
		{"three members, up, forced", 3, true, true, false},
		{"three members, down", 3, false, false, false},
		{"not a member", 0, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLeave(2, tt.members, tt.alive, tt.force)
			if (err != nil) != tt.wantRefusedErr {
				t.Fatalf("CheckLeave = %v, want refused %v", err, tt.wantRefusedErr)
			}
		})
	}
}
