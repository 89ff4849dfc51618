package dhcpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// LeasePrefix is the etcd key prefix of leases: LeasePrefix + "<address>".
const LeasePrefix = "leases/"

// offerHold is how long an offered address stays reserved for its client on
// the server that offered it, so that concurrent DISCOVERs get distinct
// offers. It is not shared: two servers may offer one address, and the
// create-only commit of REQUEST decides.
const offerHold = 30 * time.Second

// EtcdLeases is the LeaseStore of production: one etcd key per address,
// written with create-only or revision compares, and an in-memory view of
// all leases that a watch keeps current. Offers and lookups read only the
// view; Acquire writes only when an address changes hands or a lease has
// less than half of its time left.
type EtcdLeases struct {
	client *clientv3.Client
	log    *slog.Logger

	mu     sync.RWMutex
	leases map[netip.Addr]viewEntry
	byMAC  map[string]netip.Addr
	offers map[netip.Addr]pendingOffer
	ready  chan struct{}
}

type viewEntry struct {
	Lease
	rev int64 // ModRevision of the key
}

type pendingOffer struct {
	mac   string
	until time.Time
}

// NewEtcdLeases returns a store over the namespaced client. Run must be
// running for it to be used.
func NewEtcdLeases(client *clientv3.Client, log *slog.Logger) *EtcdLeases {
	if log == nil {
		log = slog.Default()
	}
	return &EtcdLeases{
		client: client,
		log:    log,
		leases: map[netip.Addr]viewEntry{},
		byMAC:  map[string]netip.Addr{},
		offers: map[netip.Addr]pendingOffer{},
		ready:  make(chan struct{}),
	}
}

// Ready is closed once the view holds every lease of etcd.
func (s *EtcdLeases) Ready() <-chan struct{} { return s.ready }

// Run loads every lease and follows changes until ctx ends. It reloads from
// scratch when the watch fails (for example after a compaction).
func (s *EtcdLeases) Run(ctx context.Context) error {
	first := true
	for {
		rev, err := s.load(ctx)
		if err == nil {
			if first {
				close(s.ready)
				first = false
			}
			err = s.watch(ctx, rev+1)
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("dhcp lease view: reloading", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *EtcdLeases) load(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, LeasePrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("dhcpd: load leases: %w", err)
	}
	leases := make(map[netip.Addr]viewEntry, len(resp.Kvs))
	byMAC := map[string]netip.Addr{}
	for _, kv := range resp.Kvs {
		a, e, ok := s.decode(kv.Key, kv.Value, kv.ModRevision)
		if !ok {
			continue
		}
		leases[a] = e
		if !e.Declined {
			byMAC[e.MAC] = a
		}
	}
	s.mu.Lock()
	s.leases, s.byMAC = leases, byMAC
	s.mu.Unlock()
	return resp.Header.Revision, nil
}

func (s *EtcdLeases) watch(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.client.Watch(ctx, LeasePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return fmt.Errorf("dhcpd: lease watch compacted at %d", wr.CompactRevision)
			}
			return fmt.Errorf("dhcpd: lease watch: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				a, err := netip.ParseAddr(strings.TrimPrefix(string(ev.Kv.Key), LeasePrefix))
				if err == nil {
					s.forget(a, ev.Kv.ModRevision)
				}
				continue
			}
			if a, e, ok := s.decode(ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision); ok {
				s.remember(a, e)
			}
		}
	}
	return errors.New("dhcpd: lease watch closed")
}

func (s *EtcdLeases) decode(key, value []byte, rev int64) (netip.Addr, viewEntry, bool) {
	a, err := netip.ParseAddr(strings.TrimPrefix(string(key), LeasePrefix))
	if err != nil {
		s.log.Warn("dhcp lease view: ignoring a key that is no address", "key", string(key))
		return a, viewEntry{}, false
	}
	var l Lease
	if err := json.Unmarshal(value, &l); err != nil {
		s.log.Warn("dhcp lease view: ignoring a malformed lease", "key", string(key), "error", err)
		return a, viewEntry{}, false
	}
	return a, viewEntry{Lease: l, rev: rev}, true
}

// remember applies a record unless the view already has a newer one.
func (s *EtcdLeases) remember(a netip.Addr, e viewEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[a]; ok && cur.rev >= e.rev {
		return
	}
	if cur, ok := s.leases[a]; ok && s.byMAC[cur.MAC] == a {
		delete(s.byMAC, cur.MAC)
	}
	s.leases[a] = e
	if !e.Declined {
		s.byMAC[e.MAC] = a
	}
}

// forget removes a record deleted at rev.
func (s *EtcdLeases) forget(a netip.Addr, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[a]
	if !ok || cur.rev > rev {
		return
	}
	delete(s.leases, a)
	if s.byMAC[cur.MAC] == a {
		delete(s.byMAC, cur.MAC)
	}
}

func (s *EtcdLeases) entry(a netip.Addr) (viewEntry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.leases[a]
	return e, ok
}

// Len is the number of lease records in the view.
func (s *EtcdLeases) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.leases)
}

// Offer implements LeaseStore. It prefers the address mac holds, then a
// never-used address, then an expired one, scanning from a position derived
// from the MAC so that servers sharing a range rarely offer the same address
// to different clients at once.
func (s *EtcdLeases) Offer(_ context.Context, r sabakan.LeaseRange, mac net.HardwareAddr, now time.Time) (netip.Addr, error) {
	m := mac.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.byMAC[m]; ok && r.Contains(a) {
		if o, busy := s.offers[a]; !busy || o.mac == m || now.After(o.until) {
			s.offers[a] = pendingOffer{mac: m, until: now.Add(offerHold)}
			return a, nil
		}
	}
	// Walk the range in a MAC-specific order (a start and a stride coprime
	// with the size): every server proposes the same address to one MAC, and
	// different MACs spread out instead of all racing for the next free one.
	h := hashMAC(m)
	start, step := int(h%uint32(r.Count)), 1
	if r.Count > 2 {
		step = 1 + int((h>>16)%uint32(r.Count-1))
		for gcd(step, r.Count) != 1 {
			step++
		}
	}
	usable := func(a netip.Addr, allowExpired bool) bool {
		if o, ok := s.offers[a]; ok && o.mac != m && now.Before(o.until) {
			return false
		}
		e, ok := s.leases[a]
		if !ok {
			return true
		}
		return allowExpired && !e.Active(now)
	}
	for _, allowExpired := range []bool{false, true} {
		for i := range r.Count {
			a := r.Addr((start + i*step) % r.Count)
			if usable(a, allowExpired) {
				s.offers[a] = pendingOffer{mac: m, until: now.Add(offerHold)}
				s.pruneOffers(now)
				return a, nil
			}
		}
	}
	return netip.Addr{}, ErrNoFreeAddress
}

// pruneOffers drops stale offers once there are many, keeping the map small.
func (s *EtcdLeases) pruneOffers(now time.Time) {
	if len(s.offers) < 1024 {
		return
	}
	for a, o := range s.offers {
		if now.After(o.until) {
			delete(s.offers, a)
		}
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func hashMAC(m string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(m))
	return h.Sum32()
}

// Lookup implements LeaseStore from the view.
func (s *EtcdLeases) Lookup(_ context.Context, a netip.Addr) (Lease, bool, error) {
	e, ok := s.entry(a)
	return e.Lease, ok, nil
}

// Acquire implements LeaseStore.
func (s *EtcdLeases) Acquire(ctx context.Context, a netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) (Lease, error) {
	want := Lease{MAC: mac.String(), Expires: now.Add(d).UTC()}
	var got Lease
	err := s.update(ctx, a, func(cur viewEntry, exists bool) (*Lease, error) {
		if exists && cur.Active(now) && !cur.HeldBy(mac) {
			return nil, ErrTaken
		}
		if exists && cur.HeldBy(mac) && cur.Expires.Sub(now) >= d/2 {
			got = cur.Lease // fresh enough: no write
			return nil, nil
		}
		got = want
		return &want, nil
	})
	if err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	if o, ok := s.offers[a]; ok && o.mac == want.MAC {
		delete(s.offers, a)
	}
	s.mu.Unlock()
	return got, nil
}

// Decline implements LeaseStore.
func (s *EtcdLeases) Decline(ctx context.Context, a netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) error {
	return s.update(ctx, a, func(cur viewEntry, exists bool) (*Lease, error) {
		if !exists || !cur.HeldBy(mac) {
			return nil, ErrTaken
		}
		return &Lease{Declined: true, Expires: now.Add(d).UTC()}, nil
	})
}

// Release implements LeaseStore.
func (s *EtcdLeases) Release(ctx context.Context, a netip.Addr, mac net.HardwareAddr) error {
	key := LeasePrefix + a.String()
	return s.retry(ctx, a, func() error {
		cur, ok := s.entry(a)
		if !ok || !cur.HeldBy(mac) {
			return ErrTaken
		}
		resp, err := etcdutil.Commit(s.client.Txn(ctx).If(etcdutil.Unchanged(key, cur.rev)).Then(clientv3.OpDelete(key)))
		if err != nil {
			return err
		}
		s.forget(a, resp.Header.Revision)
		return nil
	})
}

// update writes the record decide returns for the current one (nothing when
// it returns nil), guarded by the current record's revision.
func (s *EtcdLeases) update(ctx context.Context, a netip.Addr, decide func(cur viewEntry, exists bool) (*Lease, error)) error {
	key := LeasePrefix + a.String()
	return s.retry(ctx, a, func() error {
		cur, exists := s.entry(a)
		next, err := decide(cur, exists)
		if err != nil || next == nil {
			return err
		}
		val, err := json.Marshal(next)
		if err != nil {
			return err
		}
		cmp := etcdutil.Absent(key)
		if exists {
			cmp = etcdutil.Unchanged(key, cur.rev)
		}
		resp, err := etcdutil.Commit(s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(val))))
		if err != nil {
			return err
		}
		s.remember(a, viewEntry{Lease: *next, rev: resp.Header.Revision})
		return nil
	})
}

// retry runs f, and after a lost compare refreshes the record of a from etcd
// and runs it again, a few times.
func (s *EtcdLeases) retry(ctx context.Context, a netip.Addr, f func() error) error {
	key := LeasePrefix + a.String()
	for range 5 {
		err := f()
		if !errors.Is(err, etcdutil.ErrConflict) {
			return err
		}
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("dhcpd: refresh lease %s: %w", a, err)
		}
		if len(resp.Kvs) == 0 {
			s.forget(a, resp.Header.Revision)
			continue
		}
		kv := resp.Kvs[0]
		if _, e, ok := s.decode(kv.Key, kv.Value, kv.ModRevision); ok {
			s.remember(a, e)
		}
	}
	return fmt.Errorf("dhcpd: lease %s: %w", a, etcdutil.ErrConflict)
}
