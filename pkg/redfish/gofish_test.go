package redfish

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// TestGofish walks the service with the gofish client, as the tools do:
// every link it follows must lead to a resource it can read.
func TestGofish(t *testing.T) {
	for _, basicAuth := range []bool{false, true} {
		name := "session"
		if basicAuth {
			name = "basic"
		}
		t.Run(name, func(t *testing.T) {
			s := newService(t)
			srv := httptest.NewTLSServer(s.h)
			t.Cleanup(srv.Close)
			c, err := gofish.ConnectContext(t.Context(), gofish.ClientConfig{
				Endpoint:          srv.URL,
				Username:          testUser,
				Password:          testPassword,
				BasicAuth:         basicAuth,
				HTTPClient:        srv.Client(),
				NoModifyTransport: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(s.h.sessions.list()); basicAuth && n != 0 || !basicAuth && n != 1 {
				t.Errorf("%d sessions while connected", n)
			}

			systems, err := c.Service.Systems()
			if err != nil || len(systems) != 1 {
				t.Fatalf("systems: %v, %v", systems, err)
			}
			sys := systems[0]
			if sys.PowerState != schemas.OnPowerState || sys.SerialNumber != "SN0001" {
				t.Errorf("system = %+v", sys)
			}
			if _, err := sys.Reset(schemas.ForceOffResetType); err != nil {
				t.Fatal(err)
			}
			if _, err := sys.Reset(schemas.NmiResetType); err == nil {
				t.Error("gofish sent a reset type the system does not announce")
			}
			if got := s.sys.received(); !slices.Equal(got, []ResetType{ResetForceOff}) {
				t.Errorf("the system got %v", got)
			}

			chassis, err := sys.Chassis()
			if err != nil || len(chassis) != 1 || chassis[0].PowerState != schemas.OffPowerState {
				t.Fatalf("chassis: %+v, %v", chassis, err)
			}
			back, err := chassis[0].ComputerSystems()
			if err != nil || len(back) != 1 || back[0].ID != sys.ID {
				t.Errorf("chassis' systems: %+v, %v", back, err)
			}
			managers, err := sys.ManagedBy()
			if err != nil || len(managers) != 1 || managers[0].ManagerType != schemas.BMCManagerType {
				t.Fatalf("managers: %+v, %v", managers, err)
			}
			if servers, err := managers[0].ManagerForServers(); err != nil || len(servers) != 1 {
				t.Errorf("manager's servers: %+v, %v", servers, err)
			}
			if all, err := c.Service.Chassis(); err != nil || len(all) != 1 {
				t.Errorf("all chassis: %+v, %v", all, err)
			}
			if all, err := c.Service.Managers(); err != nil || len(all) != 1 {
				t.Errorf("all managers: %+v, %v", all, err)
			}
			ss, err := c.Service.SessionService()
			if err != nil {
				t.Fatal(err)
			}
			sessions, err := ss.Sessions()
			if err != nil || basicAuth && len(sessions) != 0 || !basicAuth && (len(sessions) != 1 || sessions[0].UserName != testUser) {
				t.Errorf("sessions: %+v, %v", sessions, err)
			}

			c.Logout()
			if n := len(s.h.sessions.list()); n != 0 {
				t.Errorf("%d sessions after logout", n)
			}
		})
	}
}
