package sabakan

import "time"

// State is a machine state as sabakan's GraphQL spells it.
type State string

// Machine states.
const (
	StateUninitialized State = "UNINITIALIZED"
	StateHealthy       State = "HEALTHY"
	StateUnhealthy     State = "UNHEALTHY"
	StateUnreachable   State = "UNREACHABLE"
	StateUpdating      State = "UPDATING"
	StateRetiring      State = "RETIRING"
	StateRetired       State = "RETIRED"
)

// Machine is what the generator knows of one machine: sabakan's
// searchMachines answer, field names as in its schema.
type Machine struct {
	Spec   MachineSpec   `json:"spec"`
	Status MachineStatus `json:"status"`
}

// MachineSpec is a machine's registration.
type MachineSpec struct {
	Serial       string    `json:"serial"`
	Labels       []Label   `json:"labels"`
	Rack         int       `json:"rack"`
	IndexInRack  int       `json:"indexInRack"`
	Role         string    `json:"role"`
	IPv4         []string  `json:"ipv4"`
	RegisterDate time.Time `json:"registerDate"`
	RetireDate   time.Time `json:"retireDate"`
}

// Label is one of a machine's labels.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// MachineStatus is a machine's state and how long it has been in it.
type MachineStatus struct {
	State State `json:"state"`
	// Duration is the seconds since the state was set.
	Duration float64 `json:"duration"`
}

// Address is the machine's node address (its first IPv4 address), which
// is its node's address in cluster.yml; "" when it has none.
func (m *Machine) Address() string {
	if len(m.Spec.IPv4) == 0 {
		return ""
	}
	return m.Spec.IPv4[0]
}

func (m *Machine) healthy() bool { return m.Status.State == StateHealthy }

// since is how long the machine has been in its state.
func (m *Machine) since() time.Duration {
	return time.Duration(m.Status.Duration * float64(time.Second))
}
