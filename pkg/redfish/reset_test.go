package redfish

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const resetPath = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"

func TestResetReachesTheSystem(t *testing.T) {
	s := newService(t)
	for _, rt := range AllResetTypes() {
		w := s.do(t, http.MethodPost, resetPath, `{"ResetType":"`+string(rt)+`"}`, admin)
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
			t.Errorf("reset %s: %d %s", rt, w.Code, w.Body)
		}
	}
	if got := s.sys.received(); !slices.Equal(got, AllResetTypes()) {
		t.Errorf("the system got %v", got)
	}
	if w := s.do(t, http.MethodPost, resetPath+"/", `{"ResetType":"ForceOff"}`, admin); w.Code != http.StatusNoContent {
		t.Errorf("with a trailing slash: %d", w.Code)
	}
}

func TestResetRefused(t *testing.T) {
	s := newService(t, func(o *Options) { o.ResetTypes = []ResetType{ResetOn, ResetForceRestart} })
	tests := []struct {
		name, body string
		status     int
		key        string
	}{
		{"not allowed here", `{"ResetType":"ForceOff"}`, http.StatusBadRequest, "ActionParameterNotSupported"},
		{"unknown", `{"ResetType":"Explode"}`, http.StatusBadRequest, "ActionParameterNotSupported"},
		{"wrong case", `{"ResetType":"forcerestart"}`, http.StatusBadRequest, "ActionParameterNotSupported"},
		{"missing", `{}`, http.StatusBadRequest, "ActionParameterMissing"},
		{"null", `{"ResetType":null}`, http.StatusBadRequest, "ActionParameterMissing"},
		{"empty body", ``, http.StatusBadRequest, "ActionParameterMissing"},
		{"parameter name's case", `{"resettype":"On"}`, http.StatusBadRequest, "ActionParameterUnknown"},
		{"extra parameter", `{"ResetType":"On","Delay":5}`, http.StatusBadRequest, "ActionParameterUnknown"},
		{"a number", `{"ResetType":1}`, http.StatusBadRequest, "ActionParameterValueTypeError"},
		{"malformed", `{"ResetType":"On"`, http.StatusBadRequest, "MalformedJSON"},
		{"not an object", `"On"`, http.StatusBadRequest, "MalformedJSON"},
		{"duplicate", `{"ResetType":"On","ResetType":"ForceRestart"}`, http.StatusBadRequest, "MalformedJSON"},
		{"trailing data", `{"ResetType":"On"} {}`, http.StatusBadRequest, "MalformedJSON"},
		{"too large", `{"ResetType":"On","@x":"` + strings.Repeat(" ", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "GeneralError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, s.do(t, http.MethodPost, resetPath, tt.body, admin), tt.status, tt.key)
		})
	}
	if got := s.sys.received(); len(got) != 0 {
		t.Errorf("refused resets reached the system: %v", got)
	}
	body := wantError(t, s.do(t, http.MethodPost, resetPath, `{"ResetType":"ForceOff"}`, admin), http.StatusBadRequest, "ActionParameterNotSupported")
	if !strings.Contains(body.Error.Message, "On, ForceRestart") {
		t.Errorf("the message does not list the allowed types: %q", body.Error.Message)
	}
}

func TestParseReset(t *testing.T) {
	allowed := []ResetType{ResetOn, ResetForceOff}
	tests := []struct {
		name, body string
		want       ResetType
		kind       errKind // 0: no error
		args       []string
	}{
		{"allowed", `{"ResetType":"ForceOff"}`, ResetForceOff, 0, nil},
		{"with spaces", " \n{ \"ResetType\" : \"On\" }\n", ResetOn, 0, nil},
		{"with an annotation", `{"ResetType":"On","@Redfish.OperationApplyTime":"Immediate"}`, ResetOn, 0, nil},
		{"not allowed", `{"ResetType":"PowerCycle"}`, "", errParameterNotSupported, []string{"PowerCycle", resetAction}},
		{"empty string", `{"ResetType":""}`, "", errParameterNotSupported, []string{"", resetAction}},
		{"missing", `{"Other":1}`, "", errParameterUnknown, []string{resetAction, "Other"}},
		{"unknown first in order", `{"b":1,"a":2,"ResetType":"On"}`, "", errParameterUnknown, []string{resetAction, "a"}},
		{"null", `{"ResetType": null }`, "", errParameterMissing, []string{resetAction, "ResetType"}},
		{"empty object", `{}`, "", errParameterMissing, []string{resetAction, "ResetType"}},
		{"blank", " \t", "", errParameterMissing, []string{resetAction, "ResetType"}},
		{"a bool", `{"ResetType":true}`, "", errParameterType, []string{"true", "ResetType", resetAction}},
		{"an object", `{"ResetType":{"x":"On"}}`, "", errParameterType, []string{`{"x":"On"}`, "ResetType", resetAction}},
		{"long value cut", `{"ResetType":"` + strings.Repeat("x", 100) + `"}`, "", errParameterNotSupported, []string{strings.Repeat("x", 64) + "…", resetAction}},
		{"null body", `null`, "", errMalformedJSON, nil},
		{"array", `[{"ResetType":"On"}]`, "", errMalformedJSON, nil},
		{"key not a string", `{1:"On"}`, "", errMalformedJSON, nil},
		{"two objects", `{"ResetType":"On"}{"ResetType":"On"}`, "", errMalformedJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReset([]byte(tt.body), allowed)
			if tt.kind == 0 {
				if err != nil || got != tt.want {
					t.Errorf("= %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.kind != tt.kind || got != "" {
				t.Fatalf("= %q, %#v; want kind %d", got, err, tt.kind)
			}
			if tt.args != nil && !slices.Equal(ae.args, tt.args) {
				t.Errorf("args = %q, want %q", ae.args, tt.args)
			}
		})
	}
}

// FuzzParseReset checks that no body makes the decision panic, that every
// refusal is a 400 with a Redfish body, and that an accepted body asks, in
// plain JSON, for exactly the allowed type returned.
func FuzzParseReset(f *testing.F) {
	for _, seed := range []string{
		`{"ResetType":"On"}`, `{"ResetType":"ForceOff","@a":1}`, `{"ResetType":"PowerCycle"}`, `{}`, ``, `null`,
		`{"ResetType":null}`, `{"ResetType":1}`, `{"ResetType":"On","ResetType":"On"}`, `{"resetType":"On"}`,
		`{"ResetType":"On"} x`, `{"ResetType":"\u004fn"}`, `[`, `{"ResetType":"On",}`,
	} {
		f.Add([]byte(seed))
	}
	allowed := []ResetType{ResetOn, ResetForceOff, ResetGracefulRestart}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseReset(body, allowed)
		if err != nil {
			status, _, eb := errorResponse(err)
			if status != http.StatusBadRequest || got != "" || !strings.HasPrefix(eb.Error.Code, "Base.1.8.") {
				t.Fatalf("%q: %q, %d %+v", body, got, status, eb)
			}
			if _, err := json.Marshal(eb); err != nil {
				t.Fatalf("%q: the error body does not encode: %v", body, err)
			}
			return
		}
		if !slices.Contains(allowed, got) {
			t.Fatalf("%q: accepted %q, not allowed", body, got)
		}
		var plain map[string]any
		if err := json.Unmarshal(body, &plain); err != nil {
			t.Fatalf("%q: accepted what encoding/json refuses: %v", body, err)
		}
		if plain["ResetType"] != string(got) {
			t.Fatalf("%q: accepted %q, the body says %v", body, got, plain["ResetType"])
		}
		for k := range plain {
			if k != "ResetType" && !strings.HasPrefix(k, "@") {
				t.Fatalf("%q: accepted with parameter %q", body, k)
			}
		}
	})
}
