package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Limits that keep every transaction within etcd's defaults: at most 128
// operations and comparisons each (--max-txn-ops) and 1.5 MiB per request
// (--max-request-bytes).
const (
	// chunkMachines is how many machines one transaction writes: two
	// create-only comparisons and two puts each, plus two guards.
	chunkMachines = 60
	// chunkBytes bounds the machine records of one transaction.
	chunkBytes = 1 << 20
	// maxRecordBytes bounds one machine record.
	maxRecordBytes = 64 << 10
	// registerAttempts bounds retries after losing a race for an index.
	registerAttempts = 10
)

// assignIndices decides the index in rack of each new machine: a boot server
// gets node-index-offset, any other machine the first free index of its
// rack. used holds the indices taken per rack; it is not modified. Errors
// wrap sabakan.ErrConflict (rack full, boot slot taken).
func assignIndices(ipam *sabakan.IPAMConfig, used map[uint]map[uint]bool, specs []sabakan.MachineSpec) ([]uint, error) {
	taken := map[uint]map[uint]bool{}
	isTaken := func(rack, idx uint) bool { return used[rack][idx] || taken[rack][idx] }
	take := func(rack, idx uint) {
		if taken[rack] == nil {
			taken[rack] = map[uint]bool{}
		}
		taken[rack][idx] = true
	}
	first, last := ipam.IndexRange()
	out := make([]uint, len(specs))
	// Boot servers first: their slot is fixed.
	for i, s := range specs {
		if s.Role != sabakan.RoleBoot {
			continue
		}
		if isTaken(s.Rack, ipam.NodeIndexOffset) {
			return nil, fmt.Errorf("%w: rack %d already has a boot server (index %d); cannot add %s", sabakan.ErrConflict, s.Rack, ipam.NodeIndexOffset, s.Serial)
		}
		take(s.Rack, ipam.NodeIndexOffset)
		out[i] = ipam.NodeIndexOffset
	}
	next := map[uint]uint{} // per rack, where the search for a free index resumes
	for i, s := range specs {
		if s.Role == sabakan.RoleBoot {
			continue
		}
		idx := max(next[s.Rack], first)
		for idx <= last && isTaken(s.Rack, idx) {
			idx++
		}
		if idx > last {
			return nil, fmt.Errorf("%w: rack %d is full (indices %d-%d are taken); cannot add %s", sabakan.ErrConflict, s.Rack, first, last, s.Serial)
		}
		take(s.Rack, idx)
		next[s.Rack] = idx + 1
		out[i] = idx
	}
	return out, nil
}

// Register adds machines all-or-nothing and returns them. specs must come
// from sabakan.DecodeMachineSpecs (validated, no duplicates). Any number of
// machines may be registered at once, concurrently with other servers:
// create-only comparisons on each serial and each rack index keep serials
// and addresses unique, and readers never see a partial registration.
func (s *Store) Register(ctx context.Context, specs []sabakan.MachineSpec) ([]*sabakan.Machine, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: no machines to register", sabakan.ErrBadRequest)
	}
	var machines []*sabakan.Machine
	var err error
	backoff := 5 * time.Millisecond
	for range registerAttempts {
		machines, err = s.tryRegister(ctx, specs)
		if !errors.Is(err, etcdutil.ErrConflict) {
			return machines, err
		}
		// Another registration took an index we chose: choose again.
		sleep(ctx, backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
	return nil, fmt.Errorf("%w: lost %d races for rack indices to concurrent registrations; try again", sabakan.ErrUnavailable, registerAttempts)
}

// written is a chunk of machines committed at rev.
type written struct {
	machines []*sabakan.Machine
	rev      int64
}

// chunkRetries bounds how often one registration re-places its remaining
// machines after losing indices to concurrent registrations.
const chunkRetries = 20

// place checks that specs can be registered against the index (current as
// of the last sync) and builds their machines and records, choosing indices
// around those taken. Errors wrap sabakan.ErrConflict (existing serial, full
// rack, boot index taken) or sabakan.ErrBadRequest.
func (s *Store) place(ipam *sabakan.IPAMConfig, specs []sabakan.MachineSpec, id string, now time.Time) ([]*sabakan.Machine, []string, error) {
	serials := make([]string, len(specs))
	racks := map[uint]bool{}
	for i, sp := range specs {
		if err := ipam.CheckPlacement(sp.Rack, ipam.NodeIndexOffset); err != nil {
			return nil, nil, fmt.Errorf("machine %s: %w", sp.Serial, err)
		}
		serials[i] = sp.Serial
		racks[sp.Rack] = true
	}
	pl := s.idx.placementOf(serials, racks)
	if len(pl.existing) > 0 {
		var dup []string
		for _, sr := range serials {
			if _, ok := pl.existing[sr]; ok {
				dup = append(dup, sr)
			}
		}
		return nil, nil, fmt.Errorf("%w: already registered (or being registered): %s", sabakan.ErrConflict, abbreviate(dup))
	}
	indices, err := assignIndices(ipam, pl.used, specs)
	if err != nil {
		return nil, nil, err
	}
	machines := make([]*sabakan.Machine, len(specs))
	values := make([]string, len(specs))
	for i, sp := range specs {
		sp.IndexInRack = indices[i]
		m := sabakan.NewMachine(sp, now)
		ipam.Assign(m)
		data, err := json.Marshal(record{Machine: *m, Registration: id})
		if err != nil {
			return nil, nil, err
		}
		if len(data) > maxRecordBytes {
			return nil, nil, fmt.Errorf("%w: machine %s has %d bytes of JSON, more than %d", sabakan.ErrBadRequest, sp.Serial, len(data), maxRecordBytes)
		}
		machines[i], values[i] = m, string(data)
	}
	return machines, values, nil
}

// tryRegister makes one attempt. etcdutil.ErrConflict means a race was lost
// before anything was written, or too often, and everything written was
// rolled back.
func (s *Store) tryRegister(ctx context.Context, specs []sabakan.MachineSpec) ([]*sabakan.Machine, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	// Machines of abandoned registrations hold serials and indices this
	// one may need: remove them now rather than wait for a sweep.
	if found := s.idx.abandoned(); len(found) > 0 {
		if err := s.removeAbandoned(ctx, found); err != nil {
			return nil, err
		}
		if err := s.sync(ctx); err != nil {
			return nil, err
		}
	}
	ipam, ipamRev, _ := s.idx.config()
	if ipam == nil {
		return nil, fmt.Errorf("%w: set the IPAM configuration (PUT /api/v1/config/ipam) before registering machines", sabakan.ErrConflict)
	}
	id := randomHex(8)
	now := s.opts.Now()
	machines, values, err := s.place(ipam, specs, id, now)
	if err != nil {
		return nil, err
	}

	// The record, bound to a lease kept alive while this request runs.
	lease, err := s.client.Grant(ctx, int64(max(s.opts.RegistrationTTL/time.Second, 2)))
	if err != nil {
		return nil, etcdErr("grant registration lease", err)
	}
	kctx, stopKeepAlive := context.WithCancel(context.Background())
	defer stopKeepAlive()
	if ka, err := s.client.KeepAlive(kctx, lease.ID); err == nil {
		go func() {
			for range ka {
			}
		}()
	}
	recKey := registrationKey(id)
	rec, _ := json.Marshal(registration{State: regPending, Created: now.UTC(), Server: s.opts.Hostname, Machines: len(specs)})
	resp, err := etcdutil.Commit(s.client.Txn(ctx).If(etcdutil.Absent(recKey)).
		Then(clientv3.OpPut(recKey, string(rec), clientv3.WithLease(lease.ID))))
	if err != nil {
		s.revoke(lease.ID)
		return nil, etcdErr("create registration record", err)
	}
	recRev := resp.Header.Revision

	// The machines, chunk by chunk, each guarded by the record and the IPAM
	// configuration they were computed from.
	var done []written
	fail := func(err error) ([]*sabakan.Machine, error) {
		s.rollback(done, lease.ID)
		return nil, err
	}
	guards := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(recKey), "=", recRev),
		etcdutil.Unchanged(KeyIPAM, ipamRev),
	}
	lost := 0
	for start := 0; start < len(machines); {
		end, size := start, 0
		for end < len(machines) && end-start < chunkMachines && size+len(values[end]) <= chunkBytes {
			size += len(values[end])
			end++
		}
		cmps := slices.Clone(guards)
		var ops []clientv3.Op
		for i := start; i < end; i++ {
			sp := machines[i].Spec
			mk, sk := machineKey(sp.Serial), slotKey(sp.Rack, sp.IndexInRack)
			cmps = append(cmps, etcdutil.Absent(mk), etcdutil.Absent(sk))
			ops = append(ops, clientv3.OpPut(mk, values[i]), clientv3.OpPut(sk, sp.Serial))
		}
		resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(recKey)).Commit()
		if err != nil {
			return fail(etcdErr("write machines", err))
		}
		if resp.Succeeded {
			done = append(done, written{machines: machines[start:end], rev: resp.Header.Revision})
			start = end
			continue
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return fail(fmt.Errorf("%w: the registration took longer than its lease (%s) and was rolled back", sabakan.ErrUnavailable, s.opts.RegistrationTTL))
		}
		// A concurrent registration took an index (or a serial) this chunk
		// wanted. Keep what is written and place the rest again around the
		// indices taken since.
		if lost++; lost > chunkRetries {
			return fail(etcdutil.ErrConflict)
		}
		sleep(ctx, time.Duration(lost)*time.Millisecond)
		if err := s.sync(ctx); err != nil {
			return fail(err)
		}
		if _, rev, _ := s.idx.config(); rev != ipamRev {
			return fail(etcdutil.ErrConflict) // only possible before the first chunk
		}
		rest, restValues, err := s.place(ipam, specs[start:], id, now)
		if err != nil {
			return fail(err)
		}
		copy(machines[start:], rest)
		copy(values[start:], restValues)
	}

	// Commit: the record loses its lease and says committed; the audit
	// entry goes with it.
	rec, _ = json.Marshal(registration{State: regCommitted, Created: now.UTC(), Server: s.opts.Hostname, Machines: len(specs)})
	resp, err = s.client.Txn(ctx).If(guards[0]).Then(
		clientv3.OpPut(recKey, string(rec)),
		s.AuditOp(ctx, sabakan.AuditMachines, "", "register", registeredDetail(machines)),
	).Commit()
	if err != nil {
		// The outcome is unknown: the janitor either keeps the machines
		// (committed) or removes them (lease expired).
		return nil, etcdErr("commit registration (its outcome is unknown: query the machines)", err)
	}
	if !resp.Succeeded {
		return fail(fmt.Errorf("%w: the registration took longer than its lease (%s) and was rolled back", sabakan.ErrUnavailable, s.opts.RegistrationTTL))
	}
	s.revoke(lease.ID)
	return machines, nil
}

// rollback deletes what a failed registration wrote and its record. It is
// best effort: whatever it leaves, the janitor removes once the lease is gone.
func (s *Store) rollback(done []written, lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, w := range done {
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, m := range w.machines {
			mk := machineKey(m.Spec.Serial)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(mk), "=", w.rev))
			ops = append(ops, clientv3.OpDelete(mk), clientv3.OpDelete(slotKey(m.Spec.Rack, m.Spec.IndexInRack)))
		}
		if _, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit(); err != nil {
			slog.Warn("store: rolling back a registration failed; the janitor will finish it", "error", err)
			break
		}
	}
	s.revoke(lease)
}

func (s *Store) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.client.Revoke(ctx, lease); err != nil {
		slog.Warn("store: revoking a registration lease failed; it expires by itself", "error", err)
	}
}

// maxRegisteredDetail bounds the audit detail of a registration. It goes
// into the commit transaction, which must stay within etcd's request limit
// (1.5 MiB) however many machines are registered; escaped once more in the
// audit entry, it at most doubles.
const maxRegisteredDetail = 256 << 10

// registeredDetail lists what was registered: serial, rack, index and role.
// Past maxRegisteredDetail bytes the list ends with {"omitted":N}, the
// number of machines left out (each machine records its own placement).
func registeredDetail(ms []*sabakan.Machine) string {
	type placed struct {
		Serial string `json:"serial"`
		Rack   uint   `json:"rack"`
		Index  uint   `json:"index-in-rack"`
		Role   string `json:"role"`
	}
	const markerRoom = len(`,{"omitted":}]`) + 20
	b := []byte{'['}
	for i, m := range ms {
		data, _ := json.Marshal(placed{m.Spec.Serial, m.Spec.Rack, m.Spec.IndexInRack, m.Spec.Role})
		if i > 0 {
			b = append(b, ',')
		}
		if len(b)+len(data)+markerRoom > maxRegisteredDetail {
			b = fmt.Appendf(b, `{"omitted":%d}`, len(ms)-i)
			break
		}
		b = append(b, data...)
	}
	return string(append(b, ']'))
}

// abbreviate joins at most ten serials.
func abbreviate(serials []string) string {
	if len(serials) <= 10 {
		return strings.Join(serials, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(serials[:10], ", "), len(serials)-10)
}
