package bgp

import "fmt"

// ASPlan numbers the autonomous systems of the leaf-spine network: every
// rack is an AS of its own (its nodes and its two ToRs speak iBGP), all
// spines share one AS and the core router has another.
type ASPlan struct {
	// RackBase is the AS of rack 0; rack r gets RackBase+r.
	RackBase uint32 `json:"rack-base"`
	// Spine is the AS of every spine switch.
	Spine uint32 `json:"spine"`
	// Core is the AS of the core router.
	Core uint32 `json:"core"`
}

// DefaultASPlan is the reference numbering: racks 64600+r, spines 64599,
// core 64597.
func DefaultASPlan() ASPlan {
	return ASPlan{RackBase: 64600, Spine: 64599, Core: 64597}
}

// isPrivateAS reports whether as is in a private-use range (RFC 6996).
func isPrivateAS(as uint64) bool {
	return as >= 64512 && as <= 65534 || as >= 4200000000 && as <= 4294967294
}

// Rack returns the AS of rack r.
func (p ASPlan) Rack(r uint) (uint32, error) {
	as := uint64(p.RackBase) + uint64(r)
	if !isPrivateAS(uint64(p.RackBase)) || !isPrivateAS(as) {
		return 0, fmt.Errorf("%w: rack %d would get AS %d (rack-base %d + rack), outside the private AS ranges 64512-65534 and 4200000000-4294967294", ErrInvalidSettings, r, as, p.RackBase)
	}
	if as == uint64(p.Spine) || as == uint64(p.Core) {
		return 0, fmt.Errorf("%w: rack %d would get AS %d, which is also the %s AS", ErrInvalidSettings, r, as, p.roleOf(uint32(as)))
	}
	return uint32(as), nil
}

func (p ASPlan) roleOf(as uint32) string {
	if as == p.Spine {
		return "spine"
	}
	return "core"
}

// Validate checks that the spine and core AS numbers are private and
// distinct, and that racks 0..racks-1 get AS numbers of their own that
// collide with neither.
func (p ASPlan) Validate(racks uint) error {
	for _, a := range []struct {
		name string
		as   uint32
	}{{"rack-base", p.RackBase}, {"spine", p.Spine}, {"core", p.Core}} {
		if !isPrivateAS(uint64(a.as)) {
			return fmt.Errorf("%w: %s AS %d is outside the private AS ranges 64512-65534 and 4200000000-4294967294", ErrInvalidSettings, a.name, a.as)
		}
	}
	if p.Spine == p.Core {
		return fmt.Errorf("%w: spine and core share AS %d", ErrInvalidSettings, p.Spine)
	}
	if racks == 0 {
		return nil
	}
	if _, err := p.Rack(racks - 1); err != nil {
		return err
	}
	last := uint64(p.RackBase) + uint64(racks) - 1
	for _, a := range []uint32{p.Spine, p.Core} {
		if uint64(a) >= uint64(p.RackBase) && uint64(a) <= last {
			return fmt.Errorf("%w: the %s AS %d is also the AS of rack %d", ErrInvalidSettings, p.roleOf(a), a, uint64(a)-uint64(p.RackBase))
		}
	}
	return nil
}
