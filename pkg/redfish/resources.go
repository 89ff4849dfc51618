package redfish

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"
)

// odata is the annotations every resource has.
type odata struct {
	ID      string `json:"@odata.id"`
	Type    string `json:"@odata.type"`
	Context string `json:"@odata.context"`
}

// meta annotates the resource at id of type typ, "Namespace.vX_Y_Z.Name" or
// "Namespace.Name".
func meta(id, typ string) odata {
	parts := strings.Split(typ, ".")
	return odata{ID: id, Type: "#" + typ, Context: pathRoot + "/$metadata#" + parts[0] + "." + parts[len(parts)-1]}
}

type link struct {
	ID string `json:"@odata.id"`
}

type status struct {
	State  string
	Health string
}

var enabled = status{State: "Enabled", Health: "OK"}

type collection struct {
	odata
	Name    string
	Members []link
	Count   int `json:"Members@odata.count"`
}

func newCollection(id, typ, name string, members ...string) collection {
	c := collection{odata: meta(id, typ), Name: name, Members: []link{}, Count: len(members)}
	for _, m := range members {
		c.Members = append(c.Members, link{m})
	}
	return c
}

func (h *handler) getVersions(x *exchange) error {
	writeJSON(x.w, http.StatusOK, map[string]string{"v1": pathRoot + "/"})
	return nil
}

type serviceRoot struct {
	odata
	ID             string `json:"Id"`
	Name           string
	RedfishVersion string
	Systems        link
	Chassis        link
	Managers       link
	SessionService link
	Links          struct{ Sessions link }
}

func (h *handler) getServiceRoot(x *exchange) error {
	root := serviceRoot{
		odata:          meta(pathRoot+"/", "ServiceRoot.v1_5_0.ServiceRoot"),
		ID:             "RootService",
		Name:           "Root Service",
		RedfishVersion: "1.11.0",
		Systems:        link{pathSystems},
		Chassis:        link{pathChassis},
		Managers:       link{pathManagers},
		SessionService: link{pathSessionService},
	}
	root.Links.Sessions = link{pathSessions}
	writeJSON(x.w, http.StatusOK, root)
	return nil
}

type computerSystem struct {
	odata
	ID           string `json:"Id"`
	Name         string
	SystemType   string
	SerialNumber string `json:",omitempty"`
	Manufacturer string `json:",omitempty"`
	Model        string `json:",omitempty"`
	PowerState   PowerState
	Status       status
	Links        struct {
		Chassis   []link
		ManagedBy []link
	}
	Actions struct {
		Reset struct {
			Target  string      `json:"target"`
			Allowed []ResetType `json:"ResetType@Redfish.AllowableValues"`
		} `json:"#ComputerSystem.Reset"`
	}
}

func (h *handler) getSystems(x *exchange) error {
	writeJSON(x.w, http.StatusOK, newCollection(pathSystems,
		"ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", h.systemPath()))
	return nil
}

func (h *handler) getSystem(x *exchange) error {
	ps, err := h.system.PowerState(x.r.Context())
	if err != nil {
		return err
	}
	s := computerSystem{
		odata:        meta(h.systemPath(), "ComputerSystem.v1_10_0.ComputerSystem"),
		ID:           h.info.ID,
		Name:         h.info.Name,
		SystemType:   "Physical",
		SerialNumber: h.info.SerialNumber,
		Manufacturer: h.info.Manufacturer,
		Model:        h.info.Model,
		PowerState:   ps,
		Status:       enabled,
	}
	s.Links.Chassis = []link{{h.chassisPath()}}
	s.Links.ManagedBy = []link{{h.managerPath()}}
	s.Actions.Reset.Target = h.systemPath() + "/Actions/" + resetAction
	s.Actions.Reset.Allowed = h.allowed
	writeJSON(x.w, http.StatusOK, s)
	return nil
}

type chassis struct {
	odata
	ID           string `json:"Id"`
	Name         string
	ChassisType  string
	SerialNumber string `json:",omitempty"`
	Manufacturer string `json:",omitempty"`
	Model        string `json:",omitempty"`
	PowerState   PowerState
	Status       status
	Links        struct {
		ComputerSystems []link
		ManagedBy       []link
	}
}

func (h *handler) getChassisCollection(x *exchange) error {
	writeJSON(x.w, http.StatusOK, newCollection(pathChassis,
		"ChassisCollection.ChassisCollection", "Chassis Collection", h.chassisPath()))
	return nil
}

func (h *handler) getChassis(x *exchange) error {
	ps, err := h.system.PowerState(x.r.Context())
	if err != nil {
		return err
	}
	c := chassis{
		odata:        meta(h.chassisPath(), "Chassis.v1_14_0.Chassis"),
		ID:           h.info.ID,
		Name:         "Chassis",
		ChassisType:  "RackMount",
		SerialNumber: h.info.SerialNumber,
		Manufacturer: h.info.Manufacturer,
		Model:        h.info.Model,
		PowerState:   ps,
		Status:       enabled,
	}
	c.Links.ComputerSystems = []link{{h.systemPath()}}
	c.Links.ManagedBy = []link{{h.managerPath()}}
	writeJSON(x.w, http.StatusOK, c)
	return nil
}

type manager struct {
	odata
	ID          string `json:"Id"`
	Name        string
	ManagerType string
	PowerState  PowerState
	Status      status
	Links       struct {
		ManagerForServers []link
		ManagerForChassis []link
	}
}

func (h *handler) getManagers(x *exchange) error {
	writeJSON(x.w, http.StatusOK, newCollection(pathManagers,
		"ManagerCollection.ManagerCollection", "Manager Collection", h.managerPath()))
	return nil
}

func (h *handler) getManager(x *exchange) error {
	m := manager{
		odata:       meta(h.managerPath(), "Manager.v1_10_0.Manager"),
		ID:          h.info.ID,
		Name:        "Manager",
		ManagerType: "BMC",
		PowerState:  PowerOn, // the BMC itself, which is answering
		Status:      enabled,
	}
	m.Links.ManagerForServers = []link{{h.systemPath()}}
	m.Links.ManagerForChassis = []link{{h.chassisPath()}}
	writeJSON(x.w, http.StatusOK, m)
	return nil
}

type sessionService struct {
	odata
	ID             string `json:"Id"`
	Name           string
	ServiceEnabled bool
	SessionTimeout int
	Status         status
	Sessions       link
}

func (h *handler) getSessionService(x *exchange) error {
	writeJSON(x.w, http.StatusOK, sessionService{
		odata:          meta(pathSessionService, "SessionService.v1_1_8.SessionService"),
		ID:             "SessionService",
		Name:           "Session Service",
		ServiceEnabled: true,
		SessionTimeout: int(sessionTimeout / time.Second),
		Status:         enabled,
		Sessions:       link{pathSessions},
	})
	return nil
}

// sessionResource is a session as clients see it: never its token.
type sessionResource struct {
	odata
	ID                    string `json:"Id"`
	Name                  string
	UserName              string
	CreatedTime           string
	ClientOriginIPAddress string `json:",omitempty"`
}

func sessionBody(s session) sessionResource {
	return sessionResource{
		odata:                 meta(pathSessions+"/"+s.id, "Session.v1_4_0.Session"),
		ID:                    s.id,
		Name:                  "User Session",
		UserName:              s.user,
		CreatedTime:           s.created.UTC().Format(time.RFC3339),
		ClientOriginIPAddress: s.remote,
	}
}

func (h *handler) listSessions(x *exchange) error {
	var ids []string
	for _, s := range h.sessions.list() {
		ids = append(ids, pathSessions+"/"+s.id)
	}
	writeJSON(x.w, http.StatusOK, newCollection(pathSessions, "SessionCollection.SessionCollection", "Session Collection", ids...))
	return nil
}

// createSession is a login: it needs no authentication but the body's.
func (h *handler) createSession(x *exchange) error {
	body, err := readBody(x)
	if err != nil {
		return err
	}
	var req struct {
		UserName *string
		Password *string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return &apiError{kind: errMalformedJSON}
	}
	switch {
	case req.UserName == nil:
		return &apiError{kind: errPropertyMissing, args: []string{"UserName"}}
	case req.Password == nil:
		return &apiError{kind: errPropertyMissing, args: []string{"Password"}}
	case !h.checkPassword(*req.UserName, *req.Password):
		return &apiError{kind: errUnauthorized, detail: "The user name or password is wrong."}
	}
	remote, _, err := net.SplitHostPort(x.r.RemoteAddr)
	if err != nil {
		remote = ""
	}
	s, token := h.sessions.create(*req.UserName, remote)
	x.w.user = s.user
	x.w.Header().Set("X-Auth-Token", token)
	x.w.Header().Set("Location", pathSessions+"/"+s.id)
	writeJSON(x.w, http.StatusCreated, sessionBody(s))
	return nil
}

func (h *handler) getSession(x *exchange) error {
	s, ok := h.sessions.get(x.param)
	if !ok {
		return &apiError{kind: errNotFound, args: []string{x.r.URL.Path}}
	}
	writeJSON(x.w, http.StatusOK, sessionBody(s))
	return nil
}

// deleteSession is a logout, or any authenticated user ending a session.
func (h *handler) deleteSession(x *exchange) error {
	if !h.sessions.delete(x.param) {
		return &apiError{kind: errNotFound, args: []string{x.r.URL.Path}}
	}
	x.w.WriteHeader(http.StatusNoContent)
	return nil
}
