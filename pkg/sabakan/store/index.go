package store

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// record is a machine as stored in etcd: the API's Machine plus the id of
// the registration that wrote it, set until that registration is tidied up.
type record struct {
	sabakan.Machine
	Registration string `json:"registration,omitempty"`
}

// decodeRecord parses a machine record. Records written before
// registration defaulted the retire date (see sabakan.NewMachine) have the
// zero date: they read as if registered now, with the registration date.
func decodeRecord(data []byte) (record, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, err
	}
	r.Spec.DefaultRetireDate()
	return r, nil
}

// Registration states.
const (
	regPending   = "pending"
	regCommitted = "committed"
)

// registration is the record of one POST /machines. While pending it is bound
// to the lease of the server writing it; the machines it wrote are hidden
// until the record says committed.
type registration struct {
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Server   string    `json:"server"`
	Machines int       `json:"machines"`
}

// entry is one machine in the index. Entries are immutable: an update
// replaces the entry, so readers may keep pointers after unlocking.
type entry struct {
	m      *sabakan.Machine
	reg    string
	modRev int64
	// head and tail are the machine's JSON around its status (encodeParts).
	head, tail []byte
}

// index is the in-memory view of the machines and configuration, fed by one
// etcd watch. rev is the revision up to which it has seen every change.
type index struct {
	mu       sync.RWMutex
	rev      int64
	changed  chan struct{} // closed and replaced whenever rev advances
	machines map[string]*entry
	byRack   map[uint]map[string]*entry
	byRole   map[string]map[string]*entry
	byIPv4   map[string]*entry
	regs     map[string]*registration
	// order is the serials sorted, nil after a machine was added or
	// removed; it is rebuilt by the next full scan under orderMu (readers
	// hold only the read lock).
	order   []string
	orderMu sync.Mutex
	ipam    *sabakan.IPAMConfig
	ipamRev int64
	dhcp    *sabakan.DHCPConfig
}

func newIndex() *index {
	return &index{
		changed:  make(chan struct{}),
		machines: map[string]*entry{},
		byRack:   map[uint]map[string]*entry{},
		byRole:   map[string]map[string]*entry{},
		byIPv4:   map[string]*entry{},
		regs:     map[string]*registration{},
	}
}

// revision is the revision the index is current to.
func (x *index) revision() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rev
}

// advance records that every change up to rev has been applied.
func (x *index) advance(rev int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.advanceLocked(rev)
}

func (x *index) advanceLocked(rev int64) {
	if rev <= x.rev {
		return
	}
	x.rev = rev
	close(x.changed)
	x.changed = make(chan struct{})
}

// wait blocks until the index is current to rev. poke is called while
// waiting to make the watch report progress when no event is due.
func (x *index) wait(ctx context.Context, rev int64, poke func()) error {
	delay := time.Millisecond
	for {
		x.mu.RLock()
		cur, ch := x.rev, x.changed
		x.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		poke()
		t := time.NewTimer(delay)
		select {
		case <-ch:
		case <-t.C:
			delay = min(2*delay, 50*time.Millisecond)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// apply applies the events of one watch response.
func (x *index) apply(events []*clientv3.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var rev int64
	for _, ev := range events {
		x.applyKV(ev.Kv, ev.Type == clientv3.EventTypeDelete)
		rev = max(rev, ev.Kv.ModRevision)
	}
	x.advanceLocked(rev)
}

func (x *index) applyKV(kv *mvccpb.KeyValue, deleted bool) {
	key := string(kv.Key)
	if serial, ok := under(key, KeyMachines); ok {
		_, existed := x.machines[serial]
		x.removeMachine(serial)
		if deleted || !existed {
			x.order = nil
		}
		if deleted {
			return
		}
		r, err := decodeRecord(kv.Value)
		if err != nil {
			slog.Error("index: ignoring a malformed machine record", "key", key, "error", err)
			return
		}
		e := &entry{m: &r.Machine, reg: r.Registration, modRev: kv.ModRevision}
		e.head, e.tail = encodeParts(e.m)
		x.addMachine(e)
		return
	}
	if id, ok := under(key, KeyRegistrations); ok {
		delete(x.regs, id)
		if deleted {
			return
		}
		var r registration
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			slog.Error("index: ignoring a malformed registration record", "key", key, "error", err)
			return
		}
		x.regs[id] = &r
		return
	}
	switch key {
	case KeyIPAM:
		x.ipam, x.ipamRev = nil, 0
		if deleted {
			return
		}
		var c sabakan.IPAMConfig
		if err := json.Unmarshal(kv.Value, &c); err != nil || c.Validate() != nil {
			slog.Error("index: ignoring a malformed IPAM configuration", "key", key)
			return
		}
		x.ipam, x.ipamRev = &c, kv.ModRevision
	case KeyDHCP:
		x.dhcp = nil
		if deleted {
			return
		}
		var c sabakan.DHCPConfig
		if err := json.Unmarshal(kv.Value, &c); err != nil {
			slog.Error("index: ignoring a malformed DHCP configuration", "key", key)
			return
		}
		x.dhcp = &c
	}
}

func (x *index) addMachine(e *entry) {
	s := e.m.Spec
	x.machines[s.Serial] = e
	addTo(x.byRack, s.Rack, e)
	addTo(x.byRole, s.Role, e)
	for _, a := range s.IPv4 {
		x.byIPv4[a] = e
	}
}

func (x *index) removeMachine(serial string) {
	e := x.machines[serial]
	if e == nil {
		return
	}
	s := e.m.Spec
	delete(x.machines, serial)
	removeFrom(x.byRack, s.Rack, serial)
	removeFrom(x.byRole, s.Role, serial)
	for _, a := range s.IPv4 {
		if x.byIPv4[a] == e {
			delete(x.byIPv4, a)
		}
	}
}

func addTo[K comparable](m map[K]map[string]*entry, k K, e *entry) {
	set := m[k]
	if set == nil {
		set = map[string]*entry{}
		m[k] = set
	}
	set[e.m.Spec.Serial] = e
}

func removeFrom[K comparable](m map[K]map[string]*entry, k K, serial string) {
	delete(m[k], serial)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// visible reports whether a machine is part of the inventory: written
// outside a registration, or by one that has committed.
func (x *index) visible(e *entry) bool {
	if e.reg == "" {
		return true
	}
	r := x.regs[e.reg]
	return r != nil && r.State == regCommitted
}

// query returns the visible machines matching q, sorted by serial.
func (x *index) query(q *sabakan.Query) []*entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []*entry
	consider := func(e *entry) {
		if e != nil && x.visible(e) && q.Match(e.m) {
			out = append(out, e)
		}
	}
	switch h := q.Has; {
	case h.Serials != nil:
		for _, s := range h.Serials {
			consider(x.machines[s])
		}
		out = slices.CompactFunc(sortEntries(out), sameSerial)
	case h.IPv4 != nil:
		for _, a := range h.IPv4 {
			consider(x.byIPv4[a])
		}
		out = slices.CompactFunc(sortEntries(out), sameSerial)
	case h.Racks != nil:
		for _, r := range h.Racks {
			for _, e := range x.byRack[r] {
				consider(e)
			}
		}
		out = slices.CompactFunc(sortEntries(out), sameSerial)
	case h.Roles != nil:
		for _, r := range h.Roles {
			for _, e := range x.byRole[r] {
				consider(e)
			}
		}
		out = slices.CompactFunc(sortEntries(out), sameSerial)
	default:
		out = make([]*entry, 0, len(x.machines))
		for _, serial := range x.sortedSerials() {
			consider(x.machines[serial])
		}
	}
	return out
}

// sortedSerials returns the serials in order, sorting them again only after
// machines were added or removed. The caller holds at least the read lock;
// the cache is swapped in atomically, so concurrent readers may both sort.
func (x *index) sortedSerials() []string {
	x.orderMu.Lock()
	defer x.orderMu.Unlock()
	if x.order == nil {
		order := make([]string, 0, len(x.machines))
		for s := range x.machines {
			order = append(order, s)
		}
		slices.Sort(order)
		x.order = order
	}
	return x.order
}

func sortEntries(es []*entry) []*entry {
	slices.SortFunc(es, func(a, b *entry) int {
		switch {
		case a.m.Spec.Serial < b.m.Spec.Serial:
			return -1
		case a.m.Spec.Serial > b.m.Spec.Serial:
			return 1
		}
		return 0
	})
	return es
}

func sameSerial(a, b *entry) bool { return a.m.Spec.Serial == b.m.Spec.Serial }

// config returns the IPAM configuration and its ModRevision (nil, 0 when unset).
func (x *index) config() (*sabakan.IPAMConfig, int64, *sabakan.DHCPConfig) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ipam, x.ipamRev, x.dhcp
}

// placement is what a registration needs to know about the inventory.
type placement struct {
	// used holds, per rack, the indices taken by any machine, visible or not.
	used map[uint]map[uint]bool
	// existing maps serials that exist already to whether they are visible.
	existing map[string]bool
}

// placementOf returns what registering serials in racks must avoid.
func (x *index) placementOf(serials []string, racks map[uint]bool) placement {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p := placement{used: map[uint]map[uint]bool{}, existing: map[string]bool{}}
	for rack := range racks {
		set := map[uint]bool{}
		for _, e := range x.byRack[rack] {
			set[e.m.Spec.IndexInRack] = true
		}
		p.used[rack] = set
	}
	for _, s := range serials {
		if e := x.machines[s]; e != nil {
			p.existing[s] = x.visible(e)
		}
	}
	return p
}

// count returns the number of visible machines, and of all machines.
func (x *index) count() (visible, all int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.machines {
		if x.visible(e) {
			visible++
		}
	}
	return visible, len(x.machines)
}

// stateCounts counts the visible machines in each state.
func (x *index) stateCounts() map[sabakan.MachineState]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	c := map[sabakan.MachineState]int{}
	for _, s := range sabakan.AllStates {
		c[s] = 0
	}
	for _, e := range x.machines {
		if x.visible(e) {
			c[e.m.Status.State]++
		}
	}
	return c
}

// tidyWork lists what the janitor has to do: machines whose registration
// record is gone (left by a failed or killed registration), and machines of
// committed registrations whose record can be retired once they are
// rewritten without it.
func (x *index) tidyWork() (orphans []*entry, committed map[string][]*entry, emptyRegs map[string]bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	committed = map[string][]*entry{}
	referenced := map[string]bool{}
	for _, e := range x.machines {
		if e.reg == "" {
			continue
		}
		referenced[e.reg] = true
		r := x.regs[e.reg]
		switch {
		case r == nil:
			orphans = append(orphans, e)
		case r.State == regCommitted:
			committed[e.reg] = append(committed[e.reg], e)
		}
	}
	emptyRegs = map[string]bool{}
	for id, r := range x.regs {
		if r.State == regCommitted && !referenced[id] {
			emptyRegs[id] = true
		}
	}
	return orphans, committed, emptyRegs
}

// reset replaces the whole content, as read at rev.
func (x *index) reset(rev int64, kvs []*mvccpb.KeyValue) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.machines = map[string]*entry{}
	x.byRack = map[uint]map[string]*entry{}
	x.byRole = map[string]map[string]*entry{}
	x.byIPv4 = map[string]*entry{}
	x.regs = map[string]*registration{}
	x.order = nil
	x.ipam, x.ipamRev, x.dhcp = nil, 0, nil
	for _, kv := range kvs {
		x.applyKV(kv, false)
	}
	x.rev = 0
	x.advanceLocked(rev)
}
