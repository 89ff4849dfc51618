package store

// Sizes are the dimensions of the inventory that bound the size of an
// answer: the GraphQL server estimates a query's cost from them before
// running it.
type Sizes struct {
	// Machines is the number of visible machines.
	Machines int
	// MaxLabels and MaxIPv4 are the most labels and node addresses any
	// visible machine has.
	MaxLabels, MaxIPv4 int
}

// Sizes reads the inventory's dimensions from the index as it is (no etcd
// request): an estimate.
func (s *Store) Sizes() Sizes {
	x := s.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	var z Sizes
	for _, e := range x.machines {
		if !x.visible(e) {
			continue
		}
		z.Machines++
		z.MaxLabels = max(z.MaxLabels, len(e.m.Spec.Labels))
		z.MaxIPv4 = max(z.MaxIPv4, len(e.m.Spec.IPv4))
	}
	return z
}
