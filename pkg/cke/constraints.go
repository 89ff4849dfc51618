package cke

import (
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Constraints guard cluster.yml against mistakes: a cluster that breaks
// them is refused, whoever wrote it (an operator or the sabakan
// integration). The names are the reference engine's.
type Constraints struct {
	// ControlPlaneCount is the number of control planes cluster.yml must
	// have.
	ControlPlaneCount int `json:"control-plane-count"`
	// MinimumWorkersRate (percent) is how many of the workers the sabakan
	// integration must keep when it removes retiring ones.
	MinimumWorkersRate int `json:"minimum-workers-rate"`
	// MaximumWorkers caps the workers; 0 is no cap.
	MaximumWorkers int `json:"maximum-workers,omitempty"`
	// WaitSecondsToReplaceControlPlane is how long the sabakan integration
	// lets a control plane be unreachable or unhealthy (a reboot, a
	// flapping link) before it replaces it with a healthy machine.
	WaitSecondsToReplaceControlPlane int `json:"wait-seconds-to-replace-control-plane"`
	// WaitSecondsToRemoveRetired is how long a worker stays in the cluster
	// after its machine was retired.
	WaitSecondsToRemoveRetired int `json:"wait-seconds-to-remove-retired"`
}

// DefaultConstraints are used until an operator sets others.
func DefaultConstraints() *Constraints {
	return &Constraints{ControlPlaneCount: 1, MinimumWorkersRate: 80,
		WaitSecondsToReplaceControlPlane: 300, WaitSecondsToRemoveRetired: 300}
}

// ParseConstraints reads constraints (YAML or JSON, unknown fields refused)
// over the defaults and validates them.
func ParseConstraints(data []byte) (*Constraints, error) {
	c := DefaultConstraints()
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("%w: constraints: %v", ErrInvalid, err)
	}
	return c, c.Validate()
}

// Validate checks the constraints themselves.
func (c *Constraints) Validate() error {
	var errs []error
	if c.ControlPlaneCount < 1 {
		errs = append(errs, fmt.Errorf("control-plane-count %d: at least 1", c.ControlPlaneCount))
	}
	if c.MinimumWorkersRate < 0 || c.MinimumWorkersRate > 100 {
		errs = append(errs, fmt.Errorf("minimum-workers-rate %d: a percentage (0-100)", c.MinimumWorkersRate))
	}
	if c.MaximumWorkers < 0 {
		errs = append(errs, fmt.Errorf("maximum-workers %d: not negative", c.MaximumWorkers))
	}
	if c.WaitSecondsToReplaceControlPlane < 0 {
		errs = append(errs, fmt.Errorf("wait-seconds-to-replace-control-plane %d: not negative", c.WaitSecondsToReplaceControlPlane))
	}
	if c.WaitSecondsToRemoveRetired < 0 {
		errs = append(errs, fmt.Errorf("wait-seconds-to-remove-retired %d: not negative", c.WaitSecondsToRemoveRetired))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w constraints: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// Check reports whether cluster satisfies c.
func (c *Constraints) Check(cluster *Cluster) error {
	var errs []error
	if n := len(cluster.ControlPlanes()); n != c.ControlPlaneCount {
		errs = append(errs, fmt.Errorf("%d control planes, constraints ask for control-plane-count %d", n, c.ControlPlaneCount))
	}
	if n := len(cluster.Workers()); c.MaximumWorkers > 0 && n > c.MaximumWorkers {
		errs = append(errs, fmt.Errorf("%d workers, more than maximum-workers %d", n, c.MaximumWorkers))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w cluster: breaks constraints: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}
