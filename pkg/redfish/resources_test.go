package redfish

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stmcginnis/gofish/schemas"
)

// odataOf returns a resource's annotations.
func odataOf(t *testing.T, body []byte) odata {
	t.Helper()
	var o odata
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCollections(t *testing.T) {
	s := newService(t)
	tests := []struct {
		path, typ, member string
	}{
		{"/redfish/v1/Systems", "#ComputerSystemCollection.ComputerSystemCollection", "/redfish/v1/Systems/1"},
		{"/redfish/v1/Chassis", "#ChassisCollection.ChassisCollection", "/redfish/v1/Chassis/1"},
		{"/redfish/v1/Managers", "#ManagerCollection.ManagerCollection", "/redfish/v1/Managers/1"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			for _, path := range []string{tt.path, tt.path + "/"} {
				w := s.do(t, http.MethodGet, path, "", admin)
				if w.Code != http.StatusOK {
					t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
				}
				c := decode[schemas.Collection](t, w)
				if !slices.Equal(c.ItemLinks, []string{tt.member}) || c.Name == "" {
					t.Errorf("GET %s: %+v", path, c)
				}
				o := odataOf(t, w.Body.Bytes())
				if o.ID != tt.path || o.Type != tt.typ || o.Context != "/redfish/v1/$metadata#"+strings.TrimPrefix(tt.typ, "#") {
					t.Errorf("GET %s: %+v", path, o)
				}
				if n := decode[map[string]any](t, w)["Members@odata.count"]; n != 1.0 {
					t.Errorf("Members@odata.count = %v", n)
				}
			}
		})
	}
}

func TestComputerSystem(t *testing.T) {
	s := newService(t, func(o *Options) { o.ResetTypes = []ResetType{ResetOn, ResetForceOff} })
	w := s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	cs := decode[schemas.ComputerSystem](t, w)
	if cs.ID != "1" || cs.Name != testInfo.Name || cs.SerialNumber != "SN0001" || cs.Manufacturer != "openneco" ||
		cs.Model != "virtual" || cs.SystemType != schemas.PhysicalSystemType || cs.PowerState != schemas.OnPowerState ||
		cs.Status.State != "Enabled" || cs.Status.Health != "OK" {
		t.Errorf("system = %+v", cs)
	}
	allowed, err := cs.GetSupportedResetTypes()
	if err != nil || !slices.Equal(allowed, []schemas.ResetType{"On", "ForceOff"}) {
		t.Errorf("allowed resets = %v, %v", allowed, err)
	}
	o := odataOf(t, w.Body.Bytes())
	if o != (odata{"/redfish/v1/Systems/1", "#ComputerSystem.v1_10_0.ComputerSystem", "/redfish/v1/$metadata#ComputerSystem.ComputerSystem"}) {
		t.Errorf("odata = %+v", o)
	}
	var raw struct {
		Links struct {
			Chassis, ManagedBy []link
		}
		Actions map[string]struct {
			Target string `json:"target"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(raw.Links.Chassis, []link{{"/redfish/v1/Chassis/1"}}) || !slices.Equal(raw.Links.ManagedBy, []link{{"/redfish/v1/Managers/1"}}) {
		t.Errorf("links = %+v", raw.Links)
	}
	if got := raw.Actions["#ComputerSystem.Reset"].Target; got != "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" {
		t.Errorf("reset target = %q", got)
	}

	s.sys.Reset(t.Context(), ResetForceOff)
	if cs := decode[schemas.ComputerSystem](t, s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", admin)); cs.PowerState != schemas.OffPowerState {
		t.Errorf("after ForceOff: PowerState = %q", cs.PowerState)
	}
	if w := s.do(t, http.MethodHead, "/redfish/v1/Systems/1", "", admin); w.Code != http.StatusOK {
		t.Errorf("HEAD: %d", w.Code)
	}
}

func TestChassisAndManager(t *testing.T) {
	s := newService(t)
	w := s.do(t, http.MethodGet, "/redfish/v1/Chassis/1", "", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("chassis: %d %s", w.Code, w.Body)
	}
	c := decode[schemas.Chassis](t, w)
	if c.ID != "1" || c.ChassisType != schemas.RackMountChassisType || c.SerialNumber != "SN0001" || c.PowerState != schemas.OnPowerState {
		t.Errorf("chassis = %+v", c)
	}
	if o := odataOf(t, w.Body.Bytes()); o.ID != "/redfish/v1/Chassis/1" || o.Type != "#Chassis.v1_14_0.Chassis" {
		t.Errorf("chassis odata = %+v", o)
	}
	var links struct {
		Links struct{ ComputerSystems []link }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &links); err != nil || !slices.Equal(links.Links.ComputerSystems, []link{{"/redfish/v1/Systems/1"}}) {
		t.Errorf("chassis links = %+v, %v", links, err)
	}

	w = s.do(t, http.MethodGet, "/redfish/v1/Managers/1", "", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("manager: %d %s", w.Code, w.Body)
	}
	m := decode[schemas.Manager](t, w)
	if m.ID != "1" || m.ManagerType != schemas.BMCManagerType {
		t.Errorf("manager = %+v", m)
	}
	if o := odataOf(t, w.Body.Bytes()); o.ID != "/redfish/v1/Managers/1" || o.Type != "#Manager.v1_10_0.Manager" {
		t.Errorf("manager odata = %+v", o)
	}
}

func TestSessionService(t *testing.T) {
	s := newService(t)
	w := s.do(t, http.MethodGet, "/redfish/v1/SessionService", "", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ss := decode[schemas.SessionService](t, w)
	if !ss.ServiceEnabled || ss.SessionTimeout != 1800 || ss.ID != "SessionService" {
		t.Errorf("session service = %+v", ss)
	}
	var sessions struct{ Sessions link }
	if err := json.Unmarshal(w.Body.Bytes(), &sessions); err != nil || sessions.Sessions.ID != pathSessions {
		t.Errorf("Sessions = %+v, %v", sessions, err)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	s := newService(t)
	for _, path := range []string{
		"/", "/redfish/v2", "/redfish/v1/Systems/2", "/redfish/v1/Systems/1/Bios", "/redfish/v1/Chassis/2",
		"/redfish/v1/SessionService/Sessions/a/b", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset/x",
	} {
		w := s.do(t, http.MethodGet, path, "", admin)
		body := wantError(t, w, http.StatusNotFound, "ResourceMissingAtURI")
		if args := body.Error.ExtendedInfo[0].MessageArgs; !slices.Equal(args, []string{path}) {
			t.Errorf("GET %s: MessageArgs = %v", path, args)
		}
	}
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodDelete, "/redfish/v1/Systems/1", "GET, HEAD"},
		{http.MethodPatch, "/redfish/v1/Systems/1", "GET, HEAD"},
		{http.MethodGet, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", "POST"},
		{http.MethodPut, "/redfish/v1/", "GET, HEAD"},
		{http.MethodPost, "/redfish", "GET, HEAD"},
		{http.MethodDelete, "/redfish/v1/SessionService/Sessions", "GET, HEAD, POST"},
		{http.MethodPost, "/redfish/v1/SessionService/Sessions/0123", "DELETE, GET, HEAD"},
	}
	for _, tt := range tests {
		w := s.do(t, tt.method, tt.path, "", admin)
		wantError(t, w, http.StatusMethodNotAllowed, "GeneralError")
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

func TestSystemFailure(t *testing.T) {
	s := newService(t)
	s.sys.setFail(errors.New("qemu monitor: connection refused"))
	for _, path := range []string{"/redfish/v1/Systems/1", "/redfish/v1/Chassis/1"} {
		body := wantError(t, s.do(t, http.MethodGet, path, "", admin), http.StatusInternalServerError, "InternalError")
		if !strings.Contains(body.Error.Message, "qemu monitor: connection refused") {
			t.Errorf("GET %s: message %q", path, body.Error.Message)
		}
	}
	w := s.do(t, http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceRestart"}`, admin)
	body := wantError(t, w, http.StatusInternalServerError, "InternalError")
	if body.Error.Message != "reset ForceRestart: qemu monitor: connection refused" {
		t.Errorf("message %q", body.Error.Message)
	}
	// Resources that do not ask the system still answer.
	if w := s.do(t, http.MethodGet, "/redfish/v1/Managers/1", "", admin); w.Code != http.StatusOK {
		t.Errorf("manager: %d", w.Code)
	}
	if !strings.Contains(s.logs.String(), "level=WARN") {
		t.Errorf("server errors are not logged at Warn:\n%s", s.logs)
	}
}
