package necocli

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openneco/neco/pkg/redfish"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestResetType(t *testing.T) {
	for _, tt := range []struct {
		action string
		force  bool
		want   redfish.ResetType
	}{
		{"start", false, redfish.ResetOn},
		{"start", true, redfish.ResetOn},
		{"stop", false, redfish.ResetGracefulShutdown},
		{"stop", true, redfish.ResetForceOff},
		{"restart", false, redfish.ResetGracefulRestart},
		{"restart", true, redfish.ResetPowerCycle},
	} {
		if got := resetType(tt.action, tt.force); got != tt.want {
			t.Errorf("resetType(%s, %v) = %s, want %s", tt.action, tt.force, got, tt.want)
		}
	}
	if got := auditAction(redfish.ResetForceOff); got != "power-forceoff" || !sabakan.IsValidAuditAction(got) {
		t.Errorf("auditAction(ForceOff) = %q", got)
	}
}

func TestResolveTargets(t *testing.T) {
	m := func(serial, node, bmc string) sabakan.Machine {
		var mc sabakan.Machine
		mc.Spec.Serial, mc.Spec.IPv4, mc.Spec.BMC.IPv4 = serial, []string{node, "10.69.1.1"}, bmc
		mc.Status.State = sabakan.StateHealthy
		return mc
	}
	machines := []sabakan.Machine{m("s1", "10.69.0.4", "10.72.16.4"), m("s2", "10.69.0.5", "10.72.16.5")}
	got, err := resolveTargets(machines, []string{"s2", "10.69.0.4", "10.72.16.5"})
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for _, tg := range got {
		serials = append(serials, tg.Serial)
	}
	if strings.Join(serials, ",") != "s2,s1,s2" || got[1].BMC != "10.72.16.4" || got[1].Node != "10.69.0.4" {
		t.Errorf("targets %+v", got)
	}
	if all, err := resolveTargets(machines, nil); err != nil || len(all) != 2 {
		t.Errorf("no argument: %+v, %v; want every machine", all, err)
	}
	_, err = resolveTargets(machines, []string{"s1", "nope", "10.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "nope, 10.0.0.1") {
		t.Errorf("unknown targets: %v", err)
	}
}

func TestFirstLineAndTruncate(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\nmore\n": "pw", "pw": "pw"} {
		if got, err := firstLine(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("firstLine(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := firstLine(strings.NewReader("\n")); err == nil {
		t.Error("an empty password was accepted")
	}
	s := strings.Repeat("é", 600) // 1200 bytes
	if got := truncate(s, 1000); len(got) > 1000 || !utf8.ValidString(got) {
		t.Errorf("truncate: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
