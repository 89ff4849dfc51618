package sabakan

import "time"

// rackCounts counts machines per rack.
func rackCounts(ms []*Machine) map[int]int {
	out := map[int]int{}
	for _, m := range ms {
		out[m.Spec.Rack]++
	}
	return out
}

// score ranks a candidate control plane: a rack with fewer control planes
// first, then more life left before the machine retires (a step per 250,
// 500 and 1,000 days either side of now).
func score(m *Machine, perRack map[int]int, now time.Time) int {
	return -perRack[m.Spec.Rack]*10 + lifeScore(m.Spec.RetireDate.Sub(now))
}

// fitness ranks a control plane for keeping: a healthy one over any other,
// then by score.
func fitness(m *Machine, perRack map[int]int, now time.Time) int {
	s := score(m, perRack, now)
	if m.healthy() {
		s += 1000
	}
	return s
}

func lifeScore(left time.Duration) int {
	days := int(left.Hours() / 24)
	s := 0
	for _, step := range []int{250, 500, 1000} {
		if days > step {
			s++
		}
		if days < -step {
			s--
		}
	}
	return s
}
