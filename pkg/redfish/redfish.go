// Package redfish is a DMTF Redfish service for one machine: what the
// virtual data center's virtual BMCs speak, so that the tools and loops that
// power machines on, off and around (pkg/bmc, on the gofish library) talk to
// a virtual machine exactly as they talk to a real BMC.
//
// A BMC serves exactly one computer system. The service implements the part
// of Redfish those clients use: the service root, sessions (and HTTP Basic
// authentication), the system with its Reset action, and minimal chassis and
// manager resources. The machine itself is behind the System interface.
package redfish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"
)

// PowerState is a Redfish PowerState value.
type PowerState string

// The power states a System reports.
const (
	PowerOn  PowerState = "On"
	PowerOff PowerState = "Off"
)

// ResetType is a Redfish ResetType value: what the Reset action does.
type ResetType string

// The reset types this service knows.
const (
	ResetOn               ResetType = "On"
	ResetForceOff         ResetType = "ForceOff"
	ResetGracefulShutdown ResetType = "GracefulShutdown"
	ResetForceRestart     ResetType = "ForceRestart"
	ResetGracefulRestart  ResetType = "GracefulRestart"
	ResetPowerCycle       ResetType = "PowerCycle"
)

// AllResetTypes returns every reset type this service knows, the default of
// Options.ResetTypes.
func AllResetTypes() []ResetType {
	return []ResetType{ResetOn, ResetForceOff, ResetGracefulShutdown, ResetForceRestart, ResetGracefulRestart, ResetPowerCycle}
}

// System is the machine behind the BMC. Its methods are called concurrently
// from request handlers.
type System interface {
	PowerState(ctx context.Context) (PowerState, error)
	// Reset does what t says. The action's response is sent once it returns.
	Reset(ctx context.Context, t ResetType) error
}

// Info describes the machine.
type Info struct {
	// ID names the system, its chassis and its manager in URLs; default "1".
	ID           string
	Name         string // default "System"
	SerialNumber string
	Manufacturer string
	Model        string
}

// Options configure NewHandler.
type Options struct {
	Info   Info
	System System
	// Username and Password are the one account; both required. They are
	// compared in constant time and never logged.
	Username, Password string
	// ResetTypes are the reset types the system allows, announced as
	// ResetType@Redfish.AllowableValues; default AllResetTypes().
	ResetTypes []ResetType
	// Log receives one line per request: reads at Debug, everything else at
	// Info, server errors at Warn. Default slog.Default().
	Log *slog.Logger
}

// Sessions expire after sessionTimeout without use; at most maxSessions exist
// at once, and creating one more evicts the oldest.
const (
	sessionTimeout = 30 * time.Minute
	maxSessions    = 64
	maxBody        = 64 << 10
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewHandler returns the Redfish service. It fails when the credentials or
// the system are missing, the ID is not URL-safe or a reset type is unknown.
func NewHandler(o Options) (http.Handler, error) {
	if o.System == nil {
		return nil, errors.New("redfish: no system")
	}
	if o.Username == "" || o.Password == "" {
		return nil, errors.New("redfish: username and password are required")
	}
	if o.Info.ID == "" {
		o.Info.ID = "1"
	}
	if !idPattern.MatchString(o.Info.ID) {
		return nil, fmt.Errorf("redfish: ID %q is not 1-64 letters, digits, '.', '_' or '-'", o.Info.ID)
	}
	if o.Info.Name == "" {
		o.Info.Name = "System"
	}
	if o.ResetTypes == nil {
		o.ResetTypes = AllResetTypes()
	}
	if len(o.ResetTypes) == 0 {
		return nil, errors.New("redfish: no reset type allowed")
	}
	for _, t := range o.ResetTypes {
		if !slices.Contains(AllResetTypes(), t) {
			return nil, fmt.Errorf("redfish: unknown reset type %q", t)
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	h := &handler{
		info:     o.Info,
		system:   o.System,
		user:     o.Username,
		password: o.Password,
		allowed:  slices.Clone(o.ResetTypes),
		log:      o.Log,
		sessions: newSessionStore(sessionTimeout, maxSessions, time.Now),
	}
	h.routes = h.buildRoutes()
	return h, nil
}
