// Package ipam allocates pod addresses on a node: the node's daemon calls
// an Allocator when a pod interface is created or deleted.
//
// Addresses come from the cluster's AddressPools (package podnet), handed
// to nodes in AddressBlocks of 2^blockSizeBits addresses. There is no
// controller: a node claims a block itself by creating the AddressBlock
// named <pool>-<index>, for the lowest index that no block of the pool
// holds (a bitset built from a LIST of the pool's blocks). The API server
// creates an object of one name only once, so of two nodes racing for one
// index one gets AlreadyExists and tries the next free index. A node
// releases a block by deleting it when its last address is freed.
//
// Every address of a block is usable, the first and the last too: pods get
// /32 addresses and the network routes blocks, so a block has no network
// or broadcast address. Within a block addresses are handed out onward from
// the last one, wrapping around at the end, so a freed address is not
// reused at once. A node allocates from the blocks of the pool it owns,
// lowest index first, and claims a block only when they are full.
//
// A block's owner reference is the node's Node, so that the garbage
// collector deletes the blocks of a deleted Node; it carries the labels
// podnet.PoolLabel and podnet.NodeLabel, by which the allocator lists its
// node's blocks. Config.SyncRoutes hears of every change of the node's
// blocks, to keep one route per block in the kernel table the BGP agent
// announces: after a claim, before the address is handed out, and before a
// release, so that no route outlives its block in the API.
//
// The allocator refuses a pool that is invalid (podnet.ValidatePool) or
// overlaps an earlier pool (podnet.Overlaps): ErrPoolConflict. It claims no
// block that overlaps a block of another pool, so that a subnet appended to
// an earlier pool over a later one's blocks does not hand out their
// addresses twice. A pool being deleted (with a deletionTimestamp, held by
// a finalizer) is not allocated from.
//
// The allocator's own addresses are in memory only: at start the daemon
// tells Start which addresses its pods use (it keeps them with the pods'
// interfaces), and Start rebuilds the rest from the API. The node's
// Kubernetes user needs to get its Node, list AddressPools, and list,
// get, create and delete AddressBlocks.
package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/podnet"
)

// Config is an Allocator's configuration.
type Config struct {
	// Client reaches the Kubernetes API.
	Client *kubeapi.Client
	// Node is this node's Kubernetes name. It is a label value of its
	// blocks, so at most 63 characters.
	Node string
	// SyncRoutes receives the full set of blocks this node owns whenever
	// it changes: after a block is claimed (before Allocate returns an
	// address in it) and before a block is released in the API; Start and
	// Resync call it once each. An error aborts the claim (the block is
	// released again) or the release (the block stays, empty, until
	// Resync). It is called with the Allocator locked: it must not call
	// the Allocator. Nil means no routes.
	SyncRoutes func([]netip.Prefix) error
}

// Use is an address a pod interface uses.
type Use struct {
	// Pool is the address's pool; empty means podnet.DefaultPool.
	Pool string
	IP   netip.Addr
	// Key is the daemon's identifier of the pod interface
	// (containerID/ifname).
	Key string
}

// Stats is what the allocator holds, per pool, for metrics.
type Stats struct {
	Pools map[string]PoolStats
}

// PoolStats is what the allocator holds of one pool.
type PoolStats struct {
	// Blocks is the number of blocks the node owns.
	Blocks int
	// Addresses is the number of addresses in them.
	Addresses int
	// InUse is the number of those handed out.
	InUse int
}

// Limits of a claim.
const (
	// poolCacheTTL is how long pools read from the API are used.
	poolCacheTTL = 5 * time.Second
	// claimRounds is how many times a claim lists the pool's blocks, and
	// claimAttempts how many indexes it tries per list, before it gives
	// up on other nodes taking every index it tries.
	claimRounds   = 3
	claimAttempts = 8
)

// Allocator allocates the addresses of one node's pods. It is safe for
// concurrent use; its methods run one at a time.
type Allocator struct {
	cfg Config

	mu sync.Mutex
	// nodeUID is the UID of the Node, read once, and again by Resync.
	nodeUID string
	// blocks are the blocks the node owns, by name.
	blocks map[string]*block
	// uses are the addresses handed out, by key.
	uses  map[string]use
	pools poolCache
}

// block is a block the node owns.
type block struct {
	name   string
	pool   string
	index  int
	uid    string
	prefix netip.Prefix
	// used has the offsets handed out; count is their number.
	used  bitset
	count int
	// next is the offset to try first.
	next int
}

type use struct {
	block *block
	off   int
}

type poolCache struct {
	read      time.Time
	pools     map[string]podnet.AddressPool
	conflicts map[string]error
}

// New makes an allocator. It reads nothing yet: call Start.
func New(cfg Config) *Allocator {
	return &Allocator{cfg: cfg, blocks: map[string]*block{}, uses: map[string]use{}}
}

// Start rebuilds the allocator's state when the daemon starts: it lists
// this node's blocks and marks used as handed out. A block without a use is
// released. A used address whose block is missing in the API is claimed
// again, under the same name; if another node owns that block now, the
// address is in conflict (ErrAddressConflict, naming the node) and not
// recorded. SyncRoutes is called once, with the blocks kept.
//
// An error about some uses (ErrIncomplete) leaves the allocator working
// with the others; any other error leaves it unstarted.
func (a *Allocator) Start(ctx context.Context, used []Use) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.blocks = map[string]*block{}
	a.uses = map[string]use{}
	if _, err := a.readNode(ctx); err != nil {
		return err
	}
	owned, err := a.listBlocks(ctx, podnet.NodeLabel+"="+a.cfg.Node)
	if err != nil {
		return fmt.Errorf("ipam: start: %w", err)
	}
	var errs []error
	for _, ab := range owned {
		if ab.Spec.Node != a.cfg.Node {
			continue
		}
		b, err := blockFrom(ab)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.blocks[b.name] = b
	}

	used = slices.Clone(used)
	slices.SortFunc(used, func(x, y Use) int { return cmp.Compare(x.Key, y.Key) })
	for _, u := range used {
		if err := a.restore(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}

	if err := a.releaseEmpty(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrIncomplete, errors.Join(errs...))
	}
	return nil
}

// restore records u at Start, claiming its block again when it is gone.
func (a *Allocator) restore(ctx context.Context, u Use) error {
	pool := cmp.Or(u.Pool, podnet.DefaultPool)
	if u.Key == "" {
		return fmt.Errorf("ipam: start: %s of pool %s has no key", u.IP, pool)
	}
	if prev, ok := a.uses[u.Key]; ok {
		return fmt.Errorf("ipam: start: %s uses both %s and %s", u.Key, prev.block.addr(prev.off), u.IP)
	}
	var b *block
	for _, c := range a.blocks {
		if c.pool == pool && c.prefix.Contains(u.IP) {
			b = c
			break
		}
	}
	if b == nil {
		var err error
		if b, err = a.reclaim(ctx, pool, u.IP); err != nil {
			return fmt.Errorf("ipam: start: %s of %s: %w", u.IP, u.Key, err)
		}
		a.blocks[b.name] = b
	}
	off := b.offset(u.IP)
	if b.used.has(off) {
		for k, other := range a.uses {
			if other.block == b && other.off == off {
				return fmt.Errorf("ipam: start: %s is used by both %s and %s", u.IP, k, u.Key)
			}
		}
	}
	b.mark(off)
	b.next = (off + 1) % b.size()
	a.uses[u.Key] = use{b, off}
	return nil
}

// reclaim claims again the block of pool that holds ip, under its name.
func (a *Allocator) reclaim(ctx context.Context, pool string, ip netip.Addr) (*block, error) {
	p, _, err := a.pool(ctx, pool, false)
	if err != nil {
		return nil, err
	}
	l, err := newLayout(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPoolConflict, err)
	}
	index, ok := l.index(ip)
	if !ok {
		return nil, fmt.Errorf("%s is in no subnet of pool %s (%s)", ip, pool, l)
	}
	prefix, _ := l.prefix(index)
	return a.recreate(ctx, pool, index, prefix)
}

// Allocate hands out an address of pool (empty: podnet.DefaultPool) for
// the pod interface key, from a block the node owns or, when they are
// full, from a block it claims. A key that holds an address of pool
// already gets it again. The errors are ErrPoolNotFound, ErrPoolConflict
// and ErrPoolExhausted, wrapped, or those of the API.
func (a *Allocator) Allocate(ctx context.Context, pool, key string) (netip.Addr, error) {
	pool = cmp.Or(pool, podnet.DefaultPool)
	if key == "" {
		return netip.Addr{}, errors.New("ipam: allocate: empty key")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.uses[key]; ok {
		if u.block.pool != pool {
			return netip.Addr{}, fmt.Errorf("ipam: allocate from pool %s: %s holds %s of pool %s", pool, key, u.block.addr(u.off), u.block.pool)
		}
		return u.block.addr(u.off), nil
	}
	p, l, fresh, err := a.usablePool(ctx, pool, false)
	if err != nil {
		return netip.Addr{}, err
	}
	if addr, ok := a.takeOwned(pool, key); ok {
		return addr, nil
	}
	b, err := a.claim(ctx, p, l)
	if errors.Is(err, ErrPoolExhausted) && !fresh {
		// The pool may have grown since it was read.
		if p, l, _, err = a.usablePool(ctx, pool, true); err != nil {
			return netip.Addr{}, err
		}
		b, err = a.claim(ctx, p, l)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	off, _ := b.take()
	a.uses[key] = use{b, off}
	return b.addr(off), nil
}

// takeOwned hands out an address of a block of pool the node owns, lowest
// index first.
func (a *Allocator) takeOwned(pool, key string) (netip.Addr, bool) {
	var blocks []*block
	for _, b := range a.blocks {
		if b.pool == pool && b.count < b.size() {
			blocks = append(blocks, b)
		}
	}
	slices.SortFunc(blocks, func(x, y *block) int { return cmp.Compare(x.index, y.index) })
	for _, b := range blocks {
		if off, ok := b.take(); ok {
			a.uses[key] = use{b, off}
			return b.addr(off), true
		}
	}
	return netip.Addr{}, false
}

// claim claims a block of pool p, whose layout is l: the lowest index that
// no block holds.
func (a *Allocator) claim(ctx context.Context, p podnet.AddressPool, l layout) (*block, error) {
	pool := p.Metadata.Name
	uid, err := a.node(ctx)
	if err != nil {
		return nil, err
	}
	for range claimRounds {
		taken, err := a.takenIndexes(ctx, p, l)
		if err != nil {
			return nil, fmt.Errorf("ipam: claim a block of pool %s: %w", pool, err)
		}
		from := 0
		for range claimAttempts {
			index, ok := taken.nextClear(from, l.total)
			if !ok {
				return nil, fmt.Errorf("ipam: pool %s (%s) has no free block: %w", pool, l, ErrPoolExhausted)
			}
			prefix, _ := l.prefix(index)
			b, err := a.createBlock(ctx, pool, index, prefix, uid)
			if kubeapi.IsAlreadyExists(err) {
				// Another node was first.
				taken.set(index)
				from = index + 1
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("ipam: claim block %s: %w", podnet.BlockName(pool, index), err)
			}
			a.blocks[b.name] = b
			if err := a.syncRoutes(); err != nil {
				delete(a.blocks, b.name)
				if derr := a.deleteBlock(ctx, b); derr != nil {
					return nil, fmt.Errorf("ipam: claimed block %s (%s), then: %w; and could not release it (Resync will): %w", b.name, b.prefix, err, derr)
				}
				return nil, fmt.Errorf("ipam: claimed block %s (%s) and released it again: %w", b.name, b.prefix, err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("ipam: pool %s (%s): other nodes claimed each of the %d blocks tried", pool, l, claimRounds*claimAttempts)
}

// takenIndexes are the indexes of pool p (of layout l) that cannot be
// claimed: those of its blocks, and those overlapping a block of another
// pool.
func (a *Allocator) takenIndexes(ctx context.Context, p podnet.AddressPool, l layout) (bitset, error) {
	pool := p.Metadata.Name
	var taken bitset
	blocks, err := a.listBlocks(ctx, podnet.PoolLabel+"="+pool)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		if b.Spec.Pool == pool && b.Spec.Index >= 0 {
			taken.set(b.Spec.Index)
		}
	}
	for _, b := range a.blocks {
		if b.pool == pool {
			taken.set(b.index)
		}
	}
	for _, other := range a.pools.overlapping(p) {
		blocks, err := a.listBlocks(ctx, podnet.PoolLabel+"="+other)
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			if prefix, err := netip.ParsePrefix(b.Spec.CIDR); err == nil {
				l.markOverlapping(&taken, prefix)
			}
		}
	}
	return taken, nil
}

// Free frees the address of key; false when key holds none. When it was
// the last address of its block, the block is released: SyncRoutes without
// it, then deleted. An error releasing the block leaves it, empty, for
// Resync to release; the address is free all the same.
func (a *Allocator) Free(ctx context.Context, key string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.uses[key]
	if !ok {
		return false, nil
	}
	delete(a.uses, key)
	b := u.block
	b.unmark(u.off)
	if b.count > 0 {
		return true, nil
	}
	if err := a.release(ctx, []*block{b}); err != nil {
		return true, fmt.Errorf("ipam: freed %s of %s: %w", b.addr(u.off), key, err)
	}
	return true, nil
}

// release releases blocks: SyncRoutes without them, then deletes them. A
// block that could not be deleted stays, for Resync.
func (a *Allocator) release(ctx context.Context, blocks []*block) error {
	if len(blocks) == 0 {
		return nil
	}
	for _, b := range blocks {
		delete(a.blocks, b.name)
	}
	if err := a.syncRoutes(); err != nil {
		for _, b := range blocks {
			a.blocks[b.name] = b
		}
		return fmt.Errorf("ipam: release %s: %w", names(blocks), err)
	}
	var errs []error
	for _, b := range blocks {
		if err := a.deleteBlock(ctx, b); err != nil {
			a.blocks[b.name] = b
			errs = append(errs, fmt.Errorf("ipam: release block %s: %w", b.name, err))
		}
	}
	return errors.Join(errs...)
}

// releaseEmpty syncs the routes of the blocks with addresses in use and
// releases the others.
func (a *Allocator) releaseEmpty(ctx context.Context) error {
	var empty []*block
	for _, b := range a.blocks {
		if b.count == 0 {
			empty = append(empty, b)
		}
	}
	slices.SortFunc(empty, func(x, y *block) int { return cmp.Compare(x.name, y.name) })
	if len(empty) == 0 {
		return a.syncRoutes()
	}
	return a.release(ctx, empty)
}

// Resync compares the node's blocks with the API, for a daemon to call
// periodically. A block this node still uses that vanished from the API is
// claimed again under its name (as Start does); one whose name another
// node took since is an ErrAddressConflict, and stays the node's until its
// addresses are freed. Blocks of this node that the allocator does not
// know (left by a claim whose answer was lost) and its empty blocks are
// released. SyncRoutes is called once, changed or not, to repair the
// routes. A Node that is gone is ErrNodeNotFound, and nothing is claimed.
func (a *Allocator) Resync(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.readNode(ctx); err != nil {
		return err
	}
	inAPI, err := a.listBlocks(ctx, podnet.NodeLabel+"="+a.cfg.Node)
	if err != nil {
		return fmt.Errorf("ipam: resync: %w", err)
	}
	byName := map[string]podnet.AddressBlock{}
	for _, ab := range inAPI {
		if ab.Spec.Node == a.cfg.Node {
			byName[ab.Metadata.Name] = ab
		}
	}
	var errs []error
	for _, ab := range inAPI {
		if _, known := a.blocks[ab.Metadata.Name]; !known && ab.Spec.Node == a.cfg.Node {
			// No route: delete it at once.
			b := &block{name: ab.Metadata.Name, uid: ab.Metadata.UID}
			if err := a.deleteBlock(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("ipam: resync: release unknown block %s: %w", b.name, err))
			}
		}
	}
	for _, b := range a.sortedBlocks() {
		ab, ok := byName[b.name]
		switch {
		case ok:
			b.uid = ab.Metadata.UID
		case b.count == 0:
			// Gone, and not used: nothing to release.
			b.uid = ""
		default:
			got, err := a.recreate(ctx, b.pool, b.index, b.prefix)
			if err != nil {
				errs = append(errs, fmt.Errorf("ipam: resync: block %s (%s) in use vanished: %w", b.name, b.prefix, err))
				continue
			}
			b.uid = got.uid
		}
	}
	if err := a.releaseEmpty(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Blocks are the blocks the node owns, in address order.
func (a *Allocator) Blocks() []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.prefixes()
}

// Stats tells what the allocator holds.
func (a *Allocator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Stats{Pools: map[string]PoolStats{}}
	for _, b := range a.blocks {
		ps := s.Pools[b.pool]
		ps.Blocks++
		ps.Addresses += b.size()
		ps.InUse += b.count
		s.Pools[b.pool] = ps
	}
	return s
}

func (a *Allocator) prefixes() []netip.Prefix {
	prefixes := make([]netip.Prefix, 0, len(a.blocks))
	for _, b := range a.blocks {
		prefixes = append(prefixes, b.prefix)
	}
	slices.SortFunc(prefixes, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return prefixes
}

func (a *Allocator) sortedBlocks() []*block {
	blocks := make([]*block, 0, len(a.blocks))
	for _, b := range a.blocks {
		blocks = append(blocks, b)
	}
	slices.SortFunc(blocks, func(x, y *block) int { return cmp.Compare(x.name, y.name) })
	return blocks
}

func (a *Allocator) syncRoutes() error {
	if a.cfg.SyncRoutes == nil {
		return nil
	}
	if err := a.cfg.SyncRoutes(a.prefixes()); err != nil {
		return fmt.Errorf("sync routes: %w", err)
	}
	return nil
}

// pool finds pool name among the pools read from the API, reading them
// again when fresh, when they are older than poolCacheTTL or when name is
// not among them; the bool tells whether they were read just now.
func (a *Allocator) pool(ctx context.Context, name string, fresh bool) (podnet.AddressPool, bool, error) {
	c := &a.pools
	_, known := c.pools[name]
	read := false
	if fresh || !known || time.Since(c.read) > poolCacheTTL {
		if err := a.readPools(ctx); err != nil {
			return podnet.AddressPool{}, false, fmt.Errorf("ipam: pool %s: %w", name, err)
		}
		read = true
	}
	p, ok := c.pools[name]
	if !ok {
		return podnet.AddressPool{}, read, fmt.Errorf("ipam: pool %s: %w", name, ErrPoolNotFound)
	}
	return p, read, nil
}

// usablePool is pool name and its layout, if blocks may be allocated from
// it.
func (a *Allocator) usablePool(ctx context.Context, name string, fresh bool) (podnet.AddressPool, layout, bool, error) {
	p, read, err := a.pool(ctx, name, fresh)
	if err != nil {
		return p, layout{}, read, err
	}
	if p.Metadata.DeletionTimestamp != nil {
		return p, layout{}, read, fmt.Errorf("ipam: pool %s is being deleted: %w", name, ErrPoolNotFound)
	}
	l, err := newLayout(p)
	if err != nil {
		return p, layout{}, read, fmt.Errorf("ipam: %w, not allocated from: %w", err, ErrPoolConflict)
	}
	if err := a.pools.conflicts[name]; err != nil {
		return p, layout{}, read, fmt.Errorf("ipam: %w, not allocated from: %w", err, ErrPoolConflict)
	}
	return p, l, read, nil
}

// readPools reads every pool.
func (a *Allocator) readPools(ctx context.Context) error {
	pools, err := list[podnet.AddressPool](ctx, a.cfg.Client, podnet.PoolsPath, "")
	if err != nil {
		return err
	}
	a.pools = poolCache{read: time.Now(), pools: map[string]podnet.AddressPool{}, conflicts: podnet.Overlaps(pools)}
	for _, p := range pools {
		a.pools.pools[p.Metadata.Name] = p
	}
	return nil
}

// overlapping are the names of the other pools some subnet of which
// overlaps a subnet of p.
func (c *poolCache) overlapping(p podnet.AddressPool) []string {
	var names []string
	for name, other := range c.pools {
		if name != p.Metadata.Name && len(podnet.Overlaps([]podnet.AddressPool{p, other})) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// blockFrom is the block of an AddressBlock read from the API.
func blockFrom(ab podnet.AddressBlock) (*block, error) {
	prefix, err := netip.ParsePrefix(ab.Spec.CIDR)
	if err != nil || !prefix.Addr().Is4() || prefix.Masked() != prefix || prefix.Bits() < 32-podnet.MaxBlockSizeBits {
		return nil, fmt.Errorf("ipam: block %s: bad CIDR %q", ab.Metadata.Name, ab.Spec.CIDR)
	}
	return &block{
		name:   ab.Metadata.Name,
		pool:   ab.Spec.Pool,
		index:  ab.Spec.Index,
		uid:    ab.Metadata.UID,
		prefix: prefix,
	}, nil
}

func (b *block) size() int { return 1 << (32 - b.prefix.Bits()) }

func (b *block) addr(off int) netip.Addr {
	return uintToAddr(addrToUint(b.prefix.Addr()) + uint32(off))
}

func (b *block) offset(ip netip.Addr) int {
	return int(addrToUint(ip) - addrToUint(b.prefix.Addr()))
}

// take hands out the first free offset from next on, wrapping around.
func (b *block) take() (int, bool) {
	off, ok := b.used.nextClear(b.next, b.size())
	if !ok {
		if off, ok = b.used.nextClear(0, b.next); !ok {
			return 0, false
		}
	}
	b.mark(off)
	b.next = (off + 1) % b.size()
	return off, true
}

func (b *block) mark(off int) {
	if !b.used.has(off) {
		b.used.set(off)
		b.count++
	}
}

func (b *block) unmark(off int) {
	if b.used.has(off) {
		b.used.clear(off)
		b.count--
	}
}

func names(blocks []*block) string {
	s := make([]string, len(blocks))
	for i, b := range blocks {
		s[i] = b.name
	}
	return strings.Join(s, ", ")
}
