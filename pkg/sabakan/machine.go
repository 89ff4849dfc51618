package sabakan

import (
	"fmt"
	"regexp"
	"time"
)

// MachineState is a step of a machine's life-cycle.
type MachineState string

// Machine states.
const (
	StateUninitialized MachineState = "uninitialized"
	StateHealthy       MachineState = "healthy"
	StateUnhealthy     MachineState = "unhealthy"
	StateUnreachable   MachineState = "unreachable"
	StateUpdating      MachineState = "updating"
	StateRetiring      MachineState = "retiring"
	StateRetired       MachineState = "retired"
)

// AllStates lists the states in life-cycle order.
var AllStates = []MachineState{
	StateUninitialized, StateHealthy, StateUnhealthy, StateUnreachable,
	StateUpdating, StateRetiring, StateRetired,
}

// transitions is the life-cycle table: the states each state may move to.
var transitions = map[MachineState][]MachineState{
	StateUninitialized: {StateHealthy, StateRetiring},
	StateHealthy:       {StateUnhealthy, StateUnreachable, StateUpdating, StateRetiring},
	StateUnhealthy:     {StateHealthy, StateUnreachable, StateUpdating, StateRetiring},
	StateUnreachable:   {StateHealthy, StateUnhealthy, StateUpdating, StateRetiring},
	StateUpdating:      {StateUninitialized},
	StateRetiring:      {StateRetired},
	StateRetired:       {StateUninitialized},
}

// IsValid reports whether s is one of the defined states.
func (s MachineState) IsValid() bool {
	_, ok := transitions[s]
	return ok
}

func (s MachineState) String() string { return string(s) }

// ParseState validates a state name.
func ParseState(name string) (MachineState, error) {
	s := MachineState(name)
	if !s.IsValid() {
		return "", fmt.Errorf("%w: unknown machine state %q", ErrBadRequest, name)
	}
	return s, nil
}

// CheckTransition reports whether a machine may move from one state to
// another. Staying in the same state is always allowed (a no-op). Whether a
// retiring machine still has disk keys is the store's check, not this one's.
func CheckTransition(from, to MachineState) error {
	if !to.IsValid() {
		return fmt.Errorf("%w: unknown machine state %q", ErrBadRequest, to)
	}
	if from == to {
		return nil
	}
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: transition from %s to %s is not allowed", ErrConflict, from, to)
}

var (
	reValidName    = regexp.MustCompile(`^[a-z0-9A-Z]([a-z0-9A-Z_.-]{0,61}[a-z0-9A-Z])?$`)
	reValidBMCType = regexp.MustCompile(`^[a-z0-9A-Z-_/.]+$`)
)

// IsValidRole reports whether role is a valid machine role.
func IsValidRole(role string) bool { return reValidName.MatchString(role) }

// IsValidLabelName reports whether name is a valid label name.
func IsValidLabelName(name string) bool { return reValidName.MatchString(name) }

// IsValidLabelValue reports whether value is a valid label value; like
// Kubernetes label values, it may be empty.
func IsValidLabelValue(value string) bool { return value == "" || reValidName.MatchString(value) }

// IsValidBMCType reports whether t is a valid BMC type.
func IsValidBMCType(t string) bool { return reValidBMCType.MatchString(t) }

// MaxSerialLength bounds serial numbers; they are etcd key and URL path parts.
const MaxSerialLength = 128

// IsValidSerial reports whether serial can name a machine: non-empty, at most
// MaxSerialLength printable ASCII characters without '/' or spaces.
func IsValidSerial(serial string) bool {
	if serial == "" || len(serial) > MaxSerialLength {
		return false
	}
	for i := 0; i < len(serial); i++ {
		c := serial[i]
		if c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

// RoleBoot is the role of a rack's boot server; it gets the fixed index
// node-index-offset and there is at most one per rack.
const RoleBoot = "boot"

// MachineBMC is a machine's baseboard management controller.
type MachineBMC struct {
	IPv4 string `json:"ipv4"`
	IPv6 string `json:"ipv6"`
	Type string `json:"type"`
}

// MachineSpec is what defines a machine. IPv4, IPv6, IndexInRack, the BMC
// addresses and RegisterDate are assigned by the server.
type MachineSpec struct {
	Serial       string            `json:"serial"`
	Labels       map[string]string `json:"labels"`
	Rack         uint              `json:"rack"`
	IndexInRack  uint              `json:"index-in-rack"`
	Role         string            `json:"role"`
	IPv4         []string          `json:"ipv4"`
	IPv6         []string          `json:"ipv6"`
	RegisterDate time.Time         `json:"register-date"`
	RetireDate   time.Time         `json:"retire-date"`
	BMC          MachineBMC        `json:"bmc"`
}

// Validate checks what a client may set when registering a machine.
func (s *MachineSpec) Validate() error {
	if !IsValidSerial(s.Serial) {
		return fmt.Errorf("%w: invalid serial %q: want 1-%d printable characters without '/' or spaces", ErrBadRequest, s.Serial, MaxSerialLength)
	}
	if !IsValidRole(s.Role) {
		return fmt.Errorf("%w: machine %s: invalid role %q", ErrBadRequest, s.Serial, s.Role)
	}
	for k, v := range s.Labels {
		if !IsValidLabelName(k) {
			return fmt.Errorf("%w: machine %s: invalid label name %q", ErrBadRequest, s.Serial, k)
		}
		if !IsValidLabelValue(v) {
			return fmt.Errorf("%w: machine %s: invalid value %q of label %s", ErrBadRequest, s.Serial, v, k)
		}
	}
	if !IsValidBMCType(s.BMC.Type) {
		return fmt.Errorf("%w: machine %s: invalid BMC type %q", ErrBadRequest, s.Serial, s.BMC.Type)
	}
	return nil
}

// DefaultRetireDate sets a missing retire date to the registration date,
// the reference's value for a machine registered without one.
func (s *MachineSpec) DefaultRetireDate() {
	if s.RetireDate.IsZero() {
		s.RetireDate = s.RegisterDate
	}
}

// MachineStatus is a machine's life-cycle state. Duration, the seconds since
// Timestamp, is computed when the machine is read.
type MachineStatus struct {
	Timestamp time.Time    `json:"timestamp"`
	Duration  float64      `json:"duration"`
	State     MachineState `json:"state"`
}

// NICConfig is the configuration of one interface.
type NICConfig struct {
	Address  string `json:"address"`
	Netmask  string `json:"netmask"`
	MaskBits int    `json:"maskbits"`
	Gateway  string `json:"gateway"`
}

// NetworkInfo is the configuration of a machine's node interfaces.
type NetworkInfo struct {
	IPv4 []NICConfig `json:"ipv4"`
}

// BMCInfo is the configuration of a machine's BMC interface.
type BMCInfo struct {
	IPv4 NICConfig `json:"ipv4"`
}

// MachineInfo is derived from the spec and the IPAM configuration.
type MachineInfo struct {
	Network NetworkInfo `json:"network"`
	BMC     BMCInfo     `json:"bmc"`
}

// Machine is a server in the inventory.
type Machine struct {
	Spec   MachineSpec   `json:"spec"`
	Status MachineStatus `json:"status"`
	Info   MachineInfo   `json:"info"`
}

// NewMachine returns a machine in its first state, registered at now. A
// spec without a retire date gets its registration date, as in the
// reference.
func NewMachine(spec MachineSpec, now time.Time) *Machine {
	spec.RegisterDate = now.UTC()
	spec.DefaultRetireDate()
	return &Machine{
		Spec:   spec,
		Status: MachineStatus{Timestamp: now.UTC(), State: StateUninitialized},
	}
}

// SetState moves m to state at now, enforcing the life-cycle table. It
// returns whether anything changed.
func (m *Machine) SetState(to MachineState, now time.Time) (bool, error) {
	if err := CheckTransition(m.Status.State, to); err != nil {
		return false, fmt.Errorf("machine %s: %w", m.Spec.Serial, err)
	}
	if m.Status.State == to {
		return false, nil
	}
	m.Status.State = to
	m.Status.Timestamp = now.UTC()
	return true, nil
}

// WithDuration returns a copy of m with Status.Duration computed at now.
func (m Machine) WithDuration(now time.Time) Machine {
	m.Status.Duration = now.Sub(m.Status.Timestamp).Seconds()
	return m
}
