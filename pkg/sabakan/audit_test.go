package sabakan

import (
	"strings"
	"testing"
)

func TestAppendableAudit(t *testing.T) {
	if !AuditPower.Appendable() || AuditMachines.Appendable() || AuditCategory("").Appendable() {
		t.Error("only power entries may be appended")
	}
	for _, c := range AppendableCategories() {
		if !c.Appendable() {
			t.Errorf("AppendableCategories lists %s, which is not appendable", c)
		}
	}
	tests := []struct {
		name   string
		action string
		want   bool
	}{
		{"word", "power-cycle", true},
		{"one letter", "a", true},
		{"longest", strings.Repeat("a", MaxAuditActionLength), true},
		{"too long", strings.Repeat("a", MaxAuditActionLength+1), false},
		{"empty", "", false},
		{"leading digit", "1on", false},
		{"leading dash", "-on", false},
		{"uppercase", "On", false},
		{"space", "power on", false},
		{"newline", "on\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsValidAuditAction(tt.action); got != tt.want {
				t.Errorf("IsValidAuditAction(%q) = %v, want %v", tt.action, got, tt.want)
			}
		})
	}
	if !IsValidAuditDetail("") || !IsValidAuditDetail(strings.Repeat("x", MaxAuditDetailBytes)) ||
		IsValidAuditDetail(strings.Repeat("x", MaxAuditDetailBytes+1)) || IsValidAuditDetail("\xc3") {
		t.Error("IsValidAuditDetail: want at most 1024 bytes of UTF-8")
	}
}
