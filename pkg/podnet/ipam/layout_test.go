package ipam

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/podnet"
)

func pool(name string, bits int, subnets ...string) podnet.AddressPool {
	return podnet.AddressPool{Metadata: podnet.ObjectMeta{Name: name}, Spec: podnet.AddressPoolSpec{Subnets: subnets, BlockSizeBits: bits}}
}

func TestLayout(t *testing.T) {
	// 4 blocks of /27 in the /25, 1 in the /27, 2 in the /26.
	l, err := newLayout(pool("p", 5, "10.0.0.0/25", "10.0.1.32/27", "192.168.0.0/26"))
	if err != nil {
		t.Fatal(err)
	}
	if l.total != 7 || l.blockSize() != 32 {
		t.Fatalf("total %d, block size %d", l.total, l.blockSize())
	}
	if got, want := l.String(), "10.0.0.0/25, 10.0.1.32/27, 192.168.0.0/26, /27 blocks"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	want := []string{"10.0.0.0/27", "10.0.0.32/27", "10.0.0.64/27", "10.0.0.96/27", "10.0.1.32/27", "192.168.0.0/27", "192.168.0.32/27"}
	for i, w := range want {
		p, ok := l.prefix(i)
		if !ok || p.String() != w {
			t.Errorf("prefix(%d) = %v, %v; want %s", i, p, ok, w)
			continue
		}
		// Every address of the block, first and last too, maps back.
		for _, ip := range []netip.Addr{p.Addr(), uintToAddr(addrToUint(p.Addr()) + 31)} {
			if got, ok := l.index(ip); !ok || got != i {
				t.Errorf("index(%s) = %d, %v; want %d", ip, got, ok, i)
			}
		}
	}
	for _, i := range []int{-1, 7, 100} {
		if p, ok := l.prefix(i); ok {
			t.Errorf("prefix(%d) = %v, want none", i, p)
		}
	}
	for _, ip := range []string{"10.0.0.128", "10.0.1.0", "10.0.1.64", "192.168.0.64", "1.2.3.4"} {
		if i, ok := l.index(netip.MustParseAddr(ip)); ok {
			t.Errorf("index(%s) = %d, want none", ip, i)
		}
	}

	// Blocks of one address (/32), and of 2^16.
	l32, err := newLayout(pool("p", 0, "10.1.0.0/30", "10.2.0.7/32"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := l32.prefix(4); l32.total != 5 || p.String() != "10.2.0.7/32" {
		t.Errorf("/32 blocks: total %d, prefix(4) %v", l32.total, p)
	}
	l16, err := newLayout(pool("p", 16, "10.0.0.0/8"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := l16.prefix(255); l16.total != 256 || p.String() != "10.255.0.0/16" {
		t.Errorf("/16 blocks: total %d, prefix(255) %v", l16.total, p)
	}

	if _, err := newLayout(pool("p", 5, "10.0.0.0/28")); err == nil {
		t.Error("a /28 with /27 blocks: no error")
	}
}

func TestMarkOverlapping(t *testing.T) {
	l, err := newLayout(pool("p", 2, "10.0.0.0/28", "10.0.1.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		prefix string
		want   []int
	}{
		{name: "one block", prefix: "10.0.0.4/30", want: []int{1}},
		{name: "within a block", prefix: "10.0.0.9/32", want: []int{2}},
		{name: "across blocks", prefix: "10.0.0.8/29", want: []int{2, 3}},
		{name: "larger than the subnets", prefix: "10.0.0.0/16", want: []int{0, 1, 2, 3, 4, 5}},
		{name: "second subnet", prefix: "10.0.1.4/30", want: []int{5}},
		{name: "outside", prefix: "10.0.2.0/24", want: nil},
		{name: "IPv6", prefix: "fd00::/8", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var taken bitset
			l.markOverlapping(&taken, netip.MustParsePrefix(tt.prefix))
			var got []int
			for i := range l.total {
				if taken.has(i) {
					got = append(got, i)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("marked %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("marked %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestBitset(t *testing.T) {
	var b bitset
	if i, ok := b.nextClear(0, 10); !ok || i != 0 {
		t.Errorf("empty: nextClear = %d, %v", i, ok)
	}
	if _, ok := b.nextClear(0, 0); ok {
		t.Error("nextClear in an empty range found one")
	}
	for i := range 130 {
		b.set(i)
	}
	b.clear(64)
	b.clear(129)
	tests := []struct {
		from, n int
		want    int
		ok      bool
	}{
		{0, 200, 64, true},
		{65, 200, 129, true},
		{65, 129, 0, false},
		{130, 200, 130, true},
		{500, 600, 500, true},
		{0, 64, 0, false},
		{-5, 65, 64, true},
	}
	for _, tt := range tests {
		got, ok := b.nextClear(tt.from, tt.n)
		if got != tt.want || ok != tt.ok {
			t.Errorf("nextClear(%d, %d) = %d, %v; want %d, %v", tt.from, tt.n, got, ok, tt.want, tt.ok)
		}
	}
	if !b.has(63) || b.has(64) || b.has(1000) || b.has(-1) {
		t.Error("has is wrong")
	}
	b.clear(10_000) // beyond: nothing
}

// Addresses are handed out onward from the last one, wrapping around, and
// every address of the block is usable.
func TestBlockTake(t *testing.T) {
	b := &block{prefix: netip.MustParsePrefix("10.0.0.4/30")}
	var got []string
	for range 4 {
		off, ok := b.take()
		if !ok {
			t.Fatal("full too early")
		}
		got = append(got, b.addr(off).String())
	}
	if want := "[10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7]"; fmt.Sprint(got) != want {
		t.Errorf("took %v, want %s", got, want)
	}
	if _, ok := b.take(); ok {
		t.Error("took a fifth address of a /30")
	}
	b.unmark(1)
	b.unmark(2)
	// Not 1, freed first: onward from the last one taken (3), wrapping.
	if off, _ := b.take(); off != 1 {
		t.Errorf("after freeing 1 and 2: took %d, want 1 (wrapped around past 3)", off)
	}
	if off, _ := b.take(); off != 2 {
		t.Errorf("then took %d, want 2", off)
	}
	b.unmark(0)
	b.unmark(3)
	if off, _ := b.take(); off != 3 {
		t.Errorf("after 2, took %d, want 3", off)
	}
	if b.count != 3 {
		t.Errorf("count %d, want 3", b.count)
	}
	if b.offset(netip.MustParseAddr("10.0.0.7")) != 3 {
		t.Error("offset of 10.0.0.7")
	}
}

func TestPoolCacheOverlapping(t *testing.T) {
	now := time.Now()
	a := pool("a", 5, "10.0.0.0/16")
	b := pool("b", 5, "10.1.0.0/16", "10.0.128.0/17")
	c := pool("c", 5, "10.2.0.0/16")
	a.Metadata.CreationTimestamp = now
	b.Metadata.CreationTimestamp = now.Add(time.Second)
	cache := poolCache{pools: map[string]podnet.AddressPool{"a": a, "b": b, "c": c}}
	if got := cache.overlapping(a); len(got) != 1 || got[0] != "b" {
		t.Errorf("overlapping(a) = %v, want [b]", got)
	}
	if got := cache.overlapping(c); len(got) != 0 {
		t.Errorf("overlapping(c) = %v, want none", got)
	}
}
