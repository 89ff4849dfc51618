package ipam

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/openneco/neco/pkg/podnet"
)

// layout is where the blocks of a pool are: block n is the n-th block of
// 2^bits addresses, counted over the pool's subnets in order. Subnets are
// append-only, so a block's index never changes its addresses.
type layout struct {
	bits    int
	subnets []netip.Prefix
	// starts[i] is the index of the first block of subnets[i].
	starts []int
	// total is the number of blocks.
	total int
}

// newLayout is the layout of pool p, which must be valid.
func newLayout(p podnet.AddressPool) (layout, error) {
	if err := podnet.ValidatePool(p); err != nil {
		return layout{}, err
	}
	l := layout{bits: p.Spec.BlockSizeBits}
	for _, s := range p.Spec.Subnets {
		prefix, _ := podnet.ParseSubnet(s)
		l.subnets = append(l.subnets, prefix)
		l.starts = append(l.starts, l.total)
		l.total += 1 << (32 - prefix.Bits() - l.bits)
	}
	return l, nil
}

// blockSize is the number of addresses of a block.
func (l layout) blockSize() int { return 1 << l.bits }

// prefix is the CIDR of block index; false when there is no such block.
func (l layout) prefix(index int) (netip.Prefix, bool) {
	if index < 0 || index >= l.total {
		return netip.Prefix{}, false
	}
	i := len(l.starts) - 1
	for l.starts[i] > index {
		i--
	}
	base := addrToUint(l.subnets[i].Addr()) + uint32(index-l.starts[i])<<l.bits
	return netip.PrefixFrom(uintToAddr(base), 32-l.bits), true
}

// index is the index of the block holding ip; false when no subnet of the
// pool holds it.
func (l layout) index(ip netip.Addr) (int, bool) {
	for i, s := range l.subnets {
		if s.Contains(ip) {
			return l.starts[i] + int((addrToUint(ip)-addrToUint(s.Addr()))>>l.bits), true
		}
	}
	return 0, false
}

// markOverlapping sets in taken the index of every block that overlaps p.
func (l layout) markOverlapping(taken *bitset, p netip.Prefix) {
	if !p.Addr().Is4() {
		return
	}
	p = p.Masked()
	pFirst := addrToUint(p.Addr())
	pLast := pFirst | (1<<(32-p.Bits()) - 1)
	for i, s := range l.subnets {
		if !s.Overlaps(p) {
			continue
		}
		sFirst := addrToUint(s.Addr())
		sLast := sFirst | (1<<(32-s.Bits()) - 1)
		first, last := max(pFirst, sFirst), min(pLast, sLast)
		for n := int((first - sFirst) >> l.bits); n <= int((last-sFirst)>>l.bits); n++ {
			taken.set(l.starts[i] + n)
		}
	}
}

// String describes the pool for messages: "10.64.0.0/14, /27 blocks".
func (l layout) String() string {
	var b strings.Builder
	for _, s := range l.subnets {
		fmt.Fprintf(&b, "%s, ", s)
	}
	fmt.Fprintf(&b, "/%d blocks", 32-l.bits)
	return b.String()
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func uintToAddr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// bitset is a set of small non-negative integers.
type bitset []uint64

func (b *bitset) set(i int) {
	w := i / 64
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) clear(i int) {
	if w := i / 64; w < len(b) {
		b[w] &^= 1 << (i % 64)
	}
}

func (b bitset) has(i int) bool {
	w := i / 64
	return i >= 0 && w < len(b) && b[w]&(1<<(i%64)) != 0
}

// nextClear is the first integer in [from, n) not in b; false when there
// is none.
func (b bitset) nextClear(from, n int) (int, bool) {
	for i := max(from, 0); i < n; {
		w := i / 64
		if w >= len(b) {
			return i, true
		}
		// The bits of word w from i on, set where i is free.
		free := ^b[w] >> (i % 64)
		if free != 0 {
			if j := i + bits.TrailingZeros64(free); j < n {
				return j, true
			}
			return 0, false
		}
		i = (w + 1) * 64
	}
	return 0, false
}
