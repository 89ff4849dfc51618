package ipam_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/podnet"
	"github.com/openneco/neco/pkg/podnet/ipam"
)

func TestAllocateAndFree(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	node := createNode(t, c)
	s := subnet16(t)
	// Two blocks of 4 addresses, in two subnets.
	pool := createPool(t, c, 2, s+"0.0/30", s+"1.4/30")
	r := newRoutes(c, node)
	a := newAllocator(c, node, r)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if calls := r.all(); len(calls) != 1 || len(calls[0].prefixes) != 0 {
		t.Fatalf("Start: SyncRoutes calls %v, want one, empty", calls)
	}

	addrs := map[string]netip.Addr{}
	var order []string
	for i := range 8 {
		key := fmt.Sprintf("c%d/eth0", i)
		addr, err := a.Allocate(ctx, pool, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		addrs[key] = addr
		order = append(order, addr.String())
		// The block of addr was routed before Allocate returned.
		if !slices.ContainsFunc(r.last(), func(p netip.Prefix) bool { return p.Contains(addr) }) {
			t.Errorf("%s: %s handed out, routes %v", key, addr, r.last())
		}
	}
	// Every address of a block is usable, in order.
	want := []string{s + "0.0", s + "0.1", s + "0.2", s + "0.3", s + "1.4", s + "1.5", s + "1.6", s + "1.7"}
	if !slices.Equal(order, want) {
		t.Errorf("handed out %v, want %v", order, want)
	}
	if got, want := fmt.Sprint(a.Blocks()), fmt.Sprintf("[%s0.0/30 %s1.4/30]", s, s); got != want {
		t.Errorf("Blocks() = %s, want %s", got, want)
	}
	if calls := r.all(); len(calls) != 3 {
		t.Errorf("%d SyncRoutes calls, want 3 (start, 2 claims)", len(calls))
	}

	// The blocks in the API: named <pool>-<index>, labeled, owned by the
	// Node.
	inAPI := blocks(t, c, pool)
	if got, want := blockNames(inAPI), []string{pool + "-0 " + s + "0.0/30 " + node, pool + "-1 " + s + "1.4/30 " + node}; !slices.Equal(got, want) {
		t.Errorf("blocks in the API %v, want %v", got, want)
	}
	uid := nodeUID(t, c, node)
	for _, b := range inAPI {
		refs := b.Metadata.OwnerReferences
		if len(refs) != 1 || refs[0].Kind != "Node" || refs[0].APIVersion != "v1" || refs[0].Name != node || refs[0].UID != uid {
			t.Errorf("block %s: owner references %+v", b.Metadata.Name, refs)
		}
		if b.Metadata.Labels[podnet.NodeLabel] != node || b.Metadata.Labels[podnet.PoolLabel] != pool {
			t.Errorf("block %s: labels %v", b.Metadata.Name, b.Metadata.Labels)
		}
	}

	// Exhausted: a clear error, and no block claimed.
	_, err := a.Allocate(ctx, pool, "c8/eth0")
	if !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("9th address: err = %v, want ErrPoolExhausted", err)
	}
	if want := fmt.Sprintf("pool %s (%s0.0/30, %s1.4/30, /30 blocks) has no free block", pool, s, s); !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
	if n := len(blocks(t, c, pool)); n != 2 {
		t.Errorf("%d blocks after exhaustion, want 2", n)
	}

	// A key gets its address again.
	if addr, err := a.Allocate(ctx, pool, "c3/eth0"); err != nil || addr != addrs["c3/eth0"] {
		t.Errorf("allocate again: %v, %v; want %v", addr, err, addrs["c3/eth0"])
	}
	if st := a.Stats(); st.Pools[pool] != (ipam.PoolStats{Blocks: 2, Addresses: 8, InUse: 8}) {
		t.Errorf("Stats() = %+v", st)
	}

	// Freeing the addresses of the second block releases it: routes
	// first, while it still exists in the API, then the object.
	for i := 4; i < 8; i++ {
		freed, err := a.Free(ctx, fmt.Sprintf("c%d/eth0", i))
		if err != nil || !freed {
			t.Fatalf("free c%d: %v, %v", i, freed, err)
		}
	}
	calls := r.all()
	lastCall := calls[len(calls)-1]
	if got := fmt.Sprint(lastCall.prefixes); got != fmt.Sprintf("[%s0.0/30]", s) {
		t.Errorf("routes after the release: %s", got)
	}
	if !slices.Contains(lastCall.inAPI, s+"1.4/30") {
		t.Errorf("routes synced after the block was deleted: blocks in the API then %v", lastCall.inAPI)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || !strings.HasPrefix(got[0], pool+"-0 ") {
		t.Errorf("blocks in the API after the release: %v", got)
	}
	if freed, err := a.Free(ctx, "c4/eth0"); freed || err != nil {
		t.Errorf("free again: %v, %v; want false, nil", freed, err)
	}

	// A key of another pool is refused; an empty key too.
	if _, err := a.Allocate(ctx, pool+"x", "c0/eth0"); err == nil {
		t.Error("a key holding an address of another pool got one more")
	}
	if _, err := a.Allocate(ctx, pool, ""); err == nil {
		t.Error("an empty key got an address")
	}

	for i := range 4 {
		if _, err := a.Free(ctx, fmt.Sprintf("c%d/eth0", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := blocks(t, c, pool); len(got) != 0 {
		t.Errorf("blocks left: %v", blockNames(got))
	}
	if got := a.Blocks(); len(got) != 0 {
		t.Errorf("Blocks() = %v after freeing all", got)
	}
	if st := a.Stats(); len(st.Pools) != 0 {
		t.Errorf("Stats() = %+v after freeing all", st)
	}
}

// A node that finds the pool exhausted, or cannot route its new block,
// leaves no block claimed.
func TestNothingHalfClaimed(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	s := subnet16(t)
	pool := createPool(t, c, 2, s+"0.0/30")
	nodeA, nodeB := createNode(t, c), createNode(t, c)
	a := newAllocator(c, nodeA, newRoutes(c, nodeA))
	for i := range 4 {
		if _, err := a.Allocate(ctx, pool, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	rb := newRoutes(c, nodeB)
	b := newAllocator(c, nodeB, rb)
	if _, err := b.Allocate(ctx, pool, "x"); !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("err = %v, want ErrPoolExhausted", err)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || !strings.HasSuffix(got[0], " "+nodeA) {
		t.Errorf("blocks %v, want only node A's", got)
	}

	// SyncRoutes fails: the claimed block is released again.
	pool2 := createPool(t, c, 2, s+"1.0/30")
	failure := errors.New("netlink: no route for you")
	rb.fail.Store(&failure)
	_, err := b.Allocate(ctx, pool2, "x")
	if !errors.Is(err, failure) || !strings.Contains(err.Error(), "released it again") {
		t.Fatalf("err = %v, want the SyncRoutes error", err)
	}
	if got := blocks(t, c, pool2); len(got) != 0 {
		t.Errorf("blocks left: %v", blockNames(got))
	}
	if got := b.Blocks(); len(got) != 0 {
		t.Errorf("Blocks() = %v", got)
	}
	rb.fail.Store(nil)
	if _, err := b.Allocate(ctx, pool2, "x"); err != nil {
		t.Fatal(err)
	}
}

// Start rebuilds the state from the API and the addresses in use; a
// vanished block in use is claimed again, by Start and by Resync.
func TestStartAndResync(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	node, other := createNode(t, c), createNode(t, c)
	s := subnet16(t)
	pool := createPool(t, c, 2, s+"0.0/28")

	a := newAllocator(c, node, newRoutes(c, node))
	var used []ipam.Use
	for i := range 6 {
		key := fmt.Sprintf("c%d/eth0", i)
		addr, err := a.Allocate(ctx, pool, key)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, ipam.Use{Pool: pool, IP: addr, Key: key})
	}
	if n := len(blocks(t, c, pool)); n != 2 {
		t.Fatalf("%d blocks, want 2", n)
	}

	// The daemon restarts; the pods of the second block are gone.
	r := newRoutes(c, node)
	a = newAllocator(c, node, r)
	if err := a.Start(ctx, used[:4]); err != nil {
		t.Fatal(err)
	}
	calls := r.all()
	if len(calls) != 1 || fmt.Sprint(calls[0].prefixes) != fmt.Sprintf("[%s0.0/30]", s) {
		t.Fatalf("SyncRoutes calls %+v, want one with the first block", calls)
	}
	if !slices.Contains(calls[0].inAPI, s+"0.4/30") {
		t.Errorf("the second block was deleted before its route: %v", calls[0].inAPI)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || !strings.HasPrefix(got[0], pool+"-0 ") {
		t.Errorf("blocks after Start: %v", got)
	}
	if st := a.Stats(); st.Pools[pool] != (ipam.PoolStats{Blocks: 1, Addresses: 4, InUse: 4}) {
		t.Errorf("Stats() = %+v", st)
	}
	// The addresses in use are not handed out again: a new one is in a
	// new block, the lowest free one.
	addr, err := a.Allocate(ctx, pool, "new/eth0")
	if err != nil {
		t.Fatal(err)
	}
	if addr != netip.MustParseAddr(s+"0.4") {
		t.Errorf("new address %s, want %s0.4", addr, s)
	}
	if _, err := a.Free(ctx, "new/eth0"); err != nil {
		t.Fatal(err)
	}

	// The block of the addresses in use vanishes while the daemon is
	// down: Start claims it again, under the same name.
	deleteBlock(t, c, pool+"-0")
	r = newRoutes(c, node)
	a = newAllocator(c, node, r)
	if err := a.Start(ctx, used[:4]); err != nil {
		t.Fatal(err)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || got[0] != pool+"-0 "+s+"0.0/30 "+node {
		t.Errorf("blocks after Start: %v", got)
	}
	if got := r.last(); fmt.Sprint(got) != fmt.Sprintf("[%s0.0/30]", s) {
		t.Errorf("routes %v", got)
	}

	// It vanishes while the daemon runs: Resync claims it again. A block
	// of the node that the allocator does not know is released.
	deleteBlock(t, c, pool+"-0")
	createBlock(t, c, pool, 3, s+"0.12/30", node)
	if err := a.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || got[0] != pool+"-0 "+s+"0.0/30 "+node {
		t.Errorf("blocks after Resync: %v", got)
	}
	if got := r.last(); fmt.Sprint(got) != fmt.Sprintf("[%s0.0/30]", s) {
		t.Errorf("routes %v", got)
	}

	// It vanishes and another node claims its name: an address conflict,
	// naming the other node.
	deleteBlock(t, c, pool+"-0")
	createBlock(t, c, pool, 0, s+"0.0/30", other)
	err = a.Resync(ctx)
	if !errors.Is(err, ipam.ErrAddressConflict) || !strings.Contains(err.Error(), other) {
		t.Errorf("Resync: err = %v, want ErrAddressConflict naming %s", err, other)
	}
	b := newAllocator(c, node, newRoutes(c, node))
	err = b.Start(ctx, used[:4])
	if !errors.Is(err, ipam.ErrAddressConflict) || !errors.Is(err, ipam.ErrIncomplete) || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), used[0].Key) {
		t.Errorf("Start: err = %v, want ErrIncomplete and ErrAddressConflict naming %s and the key", err, other)
	}
	// The addresses that could be kept are.
	if got := b.Blocks(); len(got) != 0 {
		t.Errorf("Blocks() = %v, want none", got)
	}

	// An address outside the pool, or twice.
	err = b.Start(ctx, []ipam.Use{
		{Pool: pool, IP: netip.MustParseAddr("192.0.2.1"), Key: "outside"},
		{Pool: pool, IP: netip.MustParseAddr(s + "0.5"), Key: "k1"},
		{Pool: pool, IP: netip.MustParseAddr(s + "0.5"), Key: "k2"},
		{Pool: "nosuch" + pool, IP: netip.MustParseAddr(s + "0.6"), Key: "k3"},
	})
	for _, want := range []string{"192.0.2.1 is in no subnet of pool", "used by both k1 and k2", "no such address pool"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start: err = %v, want it to say %q", err, want)
		}
	}
	if got := fmt.Sprint(b.Blocks()); got != fmt.Sprintf("[%s0.4/30]", s) {
		t.Errorf("Blocks() = %v", got)
	}
	if freed, err := b.Free(ctx, "k1"); !freed || err != nil {
		t.Errorf("free k1: %v, %v", freed, err)
	}
	if got := blockNames(blocks(t, c, pool)); len(got) != 1 || !strings.HasSuffix(got[0], other) {
		t.Errorf("blocks at the end: %v", got)
	}
}

func TestResyncNodeGone(t *testing.T) {
	c := client(t)
	a := newAllocator(c, name("nonode"), newRoutes(c, "x"))
	if err := a.Resync(t.Context()); !errors.Is(err, ipam.ErrNodeNotFound) {
		t.Errorf("Resync: err = %v, want ErrNodeNotFound", err)
	}
	if err := a.Start(t.Context(), nil); !errors.Is(err, ipam.ErrNodeNotFound) {
		t.Errorf("Start: err = %v, want ErrNodeNotFound", err)
	}
	long := newAllocator(c, strings.Repeat("n", 64), newRoutes(c, "x"))
	if err := long.Start(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "longer than 63") {
		t.Errorf("Start with a 64-character node name: err = %v", err)
	}
}

func deleteBlock(t *testing.T, c *kubeapi.Client, name string) {
	t.Helper()
	if err := c.Do(t.Context(), http.MethodDelete, podnet.BlocksPath+"/"+name, "", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func createBlock(t *testing.T, c *kubeapi.Client, pool string, index int, cidr, node string) {
	t.Helper()
	body := fmt.Appendf(nil, `{"apiVersion":%q,"kind":"AddressBlock","metadata":{"name":%q,"labels":{%q:%q,%q:%q}},"spec":{"pool":%q,"node":%q,"index":%d,"cidr":%q}}`,
		podnet.APIVersion, podnet.BlockName(pool, index), podnet.PoolLabel, pool, podnet.NodeLabel, node, pool, node, index, cidr)
	if err := c.Do(t.Context(), http.MethodPost, podnet.BlocksPath, kubeapi.ContentJSON, body, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPools(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	node := createNode(t, c)
	a := newAllocator(c, node, newRoutes(c, node))

	t.Run("not found", func(t *testing.T) {
		_, err := a.Allocate(ctx, name("nosuch"), "k")
		if !errors.Is(err, ipam.ErrPoolNotFound) {
			t.Errorf("err = %v, want ErrPoolNotFound", err)
		}
	})

	t.Run("overlapping", func(t *testing.T) {
		s := subnet16(t)
		earlier := createPool(t, c, 2, s+"0.0/24")
		later := createPool(t, c, 2, s+"0.128/25")
		_, err := a.Allocate(ctx, later, "k")
		if !errors.Is(err, ipam.ErrPoolConflict) {
			t.Fatalf("err = %v, want ErrPoolConflict", err)
		}
		if want := fmt.Sprintf("%s0.128/25 of pool %s overlaps %s0.0/24 of pool %s", s, later, s, earlier); !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
		if _, err := a.Allocate(ctx, earlier, "k"); err != nil {
			t.Errorf("the earlier pool: %v", err)
		}
		if _, err := a.Free(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("appended over a later pool", func(t *testing.T) {
		// A subnet appended to an earlier pool over a later pool's block:
		// the later pool is in conflict from then on, and the earlier one
		// does not claim the block that overlaps.
		s := subnet16(t)
		earlier := createPool(t, c, 2, s+"0.0/30")
		later := createPool(t, c, 2, s+"1.0/30")
		laterAddr, err := a.Allocate(ctx, later, "later")
		if err != nil {
			t.Fatal(err)
		}
		patch := fmt.Appendf(nil, `{"spec":{"subnets":["%s0.0/30","%s1.0/30"]}}`, s, s)
		if err := c.Do(ctx, http.MethodPatch, podnet.PoolsPath+"/"+earlier, kubeapi.ContentMergePatch, patch, nil); err != nil {
			t.Fatal(err)
		}
		var got []netip.Addr
		var err2 error
		for i := range 5 {
			var addr netip.Addr
			if addr, err2 = a.Allocate(ctx, earlier, fmt.Sprint("e", i)); err2 != nil {
				break
			}
			got = append(got, addr)
		}
		if !errors.Is(err2, ipam.ErrPoolExhausted) || len(got) != 4 || slices.Contains(got, laterAddr) {
			t.Errorf("from the earlier pool: %v, then %v; want 4 addresses, not %s, then exhausted", got, err2, laterAddr)
		}
		if _, err := a.Allocate(ctx, later, "later2"); !errors.Is(err, ipam.ErrPoolConflict) {
			t.Errorf("the later pool: err = %v, want ErrPoolConflict", err)
		}
	})

	t.Run("being deleted", func(t *testing.T) {
		s := subnet16(t)
		pool := createPool(t, c, 2, s+"0.0/24")
		path := podnet.PoolsPath + "/" + pool
		if err := c.Do(ctx, http.MethodPatch, path, kubeapi.ContentMergePatch, []byte(`{"metadata":{"finalizers":["test.openneco.io/hold"]}}`), nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodDelete, path, "", nil, nil); err != nil {
			t.Fatal(err)
		}
		fresh := newAllocator(c, node, newRoutes(c, node))
		_, err := fresh.Allocate(ctx, pool, "k")
		if !errors.Is(err, ipam.ErrPoolNotFound) || !strings.Contains(err.Error(), "being deleted") {
			t.Errorf("err = %v, want ErrPoolNotFound, being deleted", err)
		}
		if err := c.Do(ctx, http.MethodPatch, path, kubeapi.ContentMergePatch, []byte(`{"metadata":{"finalizers":null}}`), nil); err != nil {
			t.Fatal(err)
		}
	})
}

// Four nodes allocate 50 addresses each, at once, from a pool they race
// for: no address is handed out twice, no block is owned twice, and
// freeing them all releases every block.
func TestConcurrent(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	s := subnet16(t)
	// 64 blocks of 4 addresses for 200 addresses: the nodes race for
	// indexes all along.
	pool := createPool(t, c, 2, s+"0.0/25", s+"1.0/25")
	const nodes, perNode = 4, 50

	type result struct {
		node int
		key  string
		addr netip.Addr
		err  error
	}
	allocators := make([]*ipam.Allocator, nodes)
	nodeNames := make([]string, nodes)
	for i := range nodes {
		nodeNames[i] = createNode(t, c)
		allocators[i] = newAllocator(c, nodeNames[i], newRoutes(c, nodeNames[i]))
		if err := allocators[i].Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	results := make(chan result, nodes*perNode)
	var wg sync.WaitGroup
	for i := range nodes {
		for j := range perNode {
			wg.Go(func() {
				key := fmt.Sprintf("c%d/eth0", j)
				addr, err := allocators[i].Allocate(ctx, pool, key)
				results <- result{i, key, addr, err}
			})
		}
	}
	wg.Wait()
	close(results)

	byAddr := map[netip.Addr]result{}
	var all []result
	for r := range results {
		if r.err != nil {
			t.Fatalf("node %d %s: %v", r.node, r.key, r.err)
		}
		if prev, ok := byAddr[r.addr]; ok {
			t.Errorf("%s handed out twice: node %d %s and node %d %s", r.addr, prev.node, prev.key, r.node, r.key)
		}
		byAddr[r.addr] = r
		all = append(all, r)
	}

	// Each block is one node's, in the API and in its allocator alone, and
	// holds only that node's addresses.
	inAPI := blocks(t, c, pool)
	owner := map[netip.Prefix]string{}
	for _, b := range inAPI {
		p := netip.MustParsePrefix(b.Spec.CIDR)
		if prev, ok := owner[p]; ok {
			t.Errorf("block %s owned by %s and %s", p, prev, b.Spec.Node)
		}
		owner[p] = b.Spec.Node
	}
	held := map[netip.Prefix]int{}
	total := 0
	for i, a := range allocators {
		for _, p := range a.Blocks() {
			if prev, ok := held[p]; ok {
				t.Errorf("block %s held by allocators %d and %d", p, prev, i)
			}
			held[p] = i
			if owner[p] != nodeNames[i] {
				t.Errorf("allocator %d holds %s, owned by %q in the API", i, p, owner[p])
			}
			total++
		}
	}
	if total != len(inAPI) {
		t.Errorf("allocators hold %d blocks, the API has %d", total, len(inAPI))
	}
	for _, r := range all {
		found := false
		for p, i := range held {
			if p.Contains(r.addr) {
				found = true
				if i != r.node {
					t.Errorf("%s of node %d is in a block of node %d", r.addr, r.node, i)
				}
			}
		}
		if !found {
			t.Errorf("%s of node %d is in no block", r.addr, r.node)
		}
	}
	// 200 addresses need 50 blocks; a node's last block may be partly
	// used: at most 3 more.
	if len(inAPI) < 50 || len(inAPI) > 53 {
		t.Errorf("%d blocks for 200 addresses", len(inAPI))
	}
	t.Logf("%d blocks for %d addresses", len(inAPI), len(all))

	for _, r := range all {
		wg.Go(func() {
			if freed, err := allocators[r.node].Free(ctx, r.key); !freed || err != nil {
				t.Errorf("free node %d %s: %v, %v", r.node, r.key, freed, err)
			}
		})
	}
	wg.Wait()
	if got := blocks(t, c, pool); len(got) != 0 {
		t.Errorf("blocks left after freeing all: %v", blockNames(got))
	}
	for i, a := range allocators {
		if got := a.Blocks(); len(got) != 0 {
			t.Errorf("allocator %d holds %v after freeing all", i, got)
		}
	}
}

// When SyncRoutes fails at a release, the block stays, empty, routed and
// in the API, until Resync releases it.
func TestReleaseFails(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	node := createNode(t, c)
	s := subnet16(t)
	pool := createPool(t, c, 2, s+"0.0/30")
	r := newRoutes(c, node)
	a := newAllocator(c, node, r)
	if _, err := a.Allocate(ctx, pool, "k"); err != nil {
		t.Fatal(err)
	}
	failure := errors.New("netlink: busy")
	r.fail.Store(&failure)
	freed, err := a.Free(ctx, "k")
	if !freed || !errors.Is(err, failure) {
		t.Fatalf("Free: %v, %v; want true and the SyncRoutes error", freed, err)
	}
	if got := blocks(t, c, pool); len(got) != 1 {
		t.Errorf("blocks in the API: %v, want the empty one", blockNames(got))
	}
	if got := fmt.Sprint(a.Blocks()); got != fmt.Sprintf("[%s0.0/30]", s) {
		t.Errorf("Blocks() = %s", got)
	}
	if err := a.Resync(ctx); !errors.Is(err, failure) {
		t.Errorf("Resync: err = %v, want the SyncRoutes error", err)
	}
	r.fail.Store(nil)
	if err := a.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blocks(t, c, pool); len(got) != 0 {
		t.Errorf("blocks in the API after Resync: %v", blockNames(got))
	}
	if got := a.Blocks(); len(got) != 0 || len(r.last()) != 0 {
		t.Errorf("Blocks() = %v, routes %v after Resync", got, r.last())
	}
}
