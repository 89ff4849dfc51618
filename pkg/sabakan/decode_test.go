package sabakan

import (
	"errors"
	"testing"
)

func TestDecodeMachineSpecs(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error // nil: accepted
	}{
		{"one", `[{"serial":"a","role":"cs","rack":1,"bmc":{"type":"IPMI-2.0"}}]`, nil},
		{"assigned fields ignored", `[{"serial":"a","role":"cs","index-in-rack":9,"ipv4":["1.2.3.4"],"bmc":{"type":"x","ipv4":"1.1.1.1"}}]`, nil},
		{"retire date", `[{"serial":"a","role":"cs","retire-date":"2030-01-02T00:00:00Z","bmc":{"type":"x"}}]`, nil},
		{"unknown field tolerated", `[{"serial":"a","role":"cs","datacenter":"ty3","bmc":{"type":"x"}}]`, nil},
		{"empty body", ``, ErrBadRequest},
		{"empty array", `[]`, ErrBadRequest},
		{"null", `null`, ErrBadRequest},
		{"object", `{"serial":"a"}`, ErrBadRequest},
		{"truncated", `[{"serial":"a"`, ErrBadRequest},
		{"trailing data", `[{"serial":"a","role":"cs","bmc":{"type":"x"}}] []`, ErrBadRequest},
		{"rack as string", `[{"serial":"a","role":"cs","rack":"1","bmc":{"type":"x"}}]`, ErrBadRequest},
		{"negative rack", `[{"serial":"a","role":"cs","rack":-1,"bmc":{"type":"x"}}]`, ErrBadRequest},
		{"bad date", `[{"serial":"a","role":"cs","retire-date":"2030-01-02","bmc":{"type":"x"}}]`, ErrBadRequest},
		{"no serial", `[{"role":"cs","bmc":{"type":"x"}}]`, ErrBadRequest},
		{"bad role", `[{"serial":"a","role":"c s","bmc":{"type":"x"}}]`, ErrBadRequest},
		{"no bmc type", `[{"serial":"a","role":"cs"}]`, ErrBadRequest},
		{"duplicate serial", `[{"serial":"a","role":"cs","bmc":{"type":"x"}},{"serial":"a","role":"ss","bmc":{"type":"x"}}]`, ErrConflict},
		{"two boots in a rack", `[{"serial":"a","role":"boot","rack":2,"bmc":{"type":"x"}},{"serial":"b","role":"boot","rack":2,"bmc":{"type":"x"}}]`, ErrConflict},
		{"boots in two racks", `[{"serial":"a","role":"boot","rack":1,"bmc":{"type":"x"}},{"serial":"b","role":"boot","rack":2,"bmc":{"type":"x"}}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := DecodeMachineSpecs([]byte(tt.body))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				for _, s := range specs {
					if s.IndexInRack != 0 || s.IPv4 != nil || s.BMC.IPv4 != "" {
						t.Errorf("server-assigned fields kept: %+v", s)
					}
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzDecodeMachineSpecs(f *testing.F) {
	for _, s := range []string{
		`[{"serial":"a","role":"cs","rack":1,"labels":{"k":"v"},"bmc":{"type":"IPMI-2.0"}}]`,
		`[{"serial":"a","role":"boot","rack":0,"retire-date":"2030-01-02T00:00:00Z","bmc":{"type":"x"}}]`,
		`[]`, `{}`, `[{"serial":""}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := DecodeMachineSpecs(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrConflict) {
				t.Fatalf("error %v is neither ErrBadRequest nor ErrConflict", err)
			}
			return
		}
		if len(specs) == 0 {
			t.Fatal("accepted an empty list")
		}
		seen := map[string]bool{}
		for _, s := range specs {
			if err := s.Validate(); err != nil {
				t.Fatalf("accepted an invalid spec: %v", err)
			}
			if seen[s.Serial] {
				t.Fatalf("accepted serial %s twice", s.Serial)
			}
			seen[s.Serial] = true
		}
	})
}
