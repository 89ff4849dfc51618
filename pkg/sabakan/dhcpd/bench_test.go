package dhcpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
)

// rangeLeases is the reference boot server's lease design, kept here only
// to compare against: one etcd key per lease range holding every lease of
// the range, read and rewritten (with a revision compare) on every
// DISCOVER and every REQUEST.
type rangeLeases struct {
	client *clientv3.Client
}

type rangeEntry struct {
	Index   int       `json:"index"`
	Expires time.Time `json:"lease"`
}

// usage is the value of one range key: MAC -> lease.
type usage map[string]rangeEntry

func (s *rangeLeases) key(r sabakan.LeaseRange) string { return "lease-usages/" + r.Key() }

// update rewrites the range key with fn, retrying on conflict.
func (s *rangeLeases) update(ctx context.Context, r sabakan.LeaseRange, fn func(u usage) error) error {
	_, err := etcdutil.Update(ctx, s.client.KV, s.key(r), func(cur []byte) ([]byte, error) {
		u := usage{}
		if cur != nil {
			if err := json.Unmarshal(cur, &u); err != nil {
				return nil, err
			}
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		return json.Marshal(u)
	})
	return err
}

var benchIPAM = testIPAM()

// benchRun makes etcd prefixes unique across the runs of one benchmark.
var benchRun atomic.Int64

func (s *rangeLeases) rangeOf(a netip.Addr) sabakan.LeaseRange {
	r, _ := benchIPAM.LeaseRange(a)
	return r
}

func (s *rangeLeases) Offer(ctx context.Context, r sabakan.LeaseRange, mac net.HardwareAddr, now time.Time) (netip.Addr, error) {
	var idx int
	err := s.update(ctx, r, func(u usage) error {
		m := mac.String()
		if e, ok := u[m]; ok {
			idx = e.Index
			u[m] = rangeEntry{Index: idx, Expires: now.Add(time.Hour)}
			return nil
		}
		used := make([]bool, r.Count)
		for k, e := range u {
			if !e.Expires.After(now) {
				delete(u, k) // cleaned only when allocating, as the reference
				continue
			}
			used[e.Index] = true
		}
		idx = slices.Index(used, false)
		if idx < 0 {
			return ErrNoFreeAddress
		}
		u[m] = rangeEntry{Index: idx, Expires: now.Add(time.Hour)}
		return nil
	})
	return r.Addr(idx), err
}

func (s *rangeLeases) Lookup(ctx context.Context, a netip.Addr) (Lease, bool, error) {
	r := s.rangeOf(a)
	resp, err := s.client.Get(ctx, s.key(r))
	if err != nil || len(resp.Kvs) == 0 {
		return Lease{}, false, err
	}
	u := usage{}
	json.Unmarshal(resp.Kvs[0].Value, &u)
	i, _ := r.Index(a)
	for m, e := range u {
		if e.Index == i {
			return Lease{MAC: m, Expires: e.Expires}, true, nil
		}
	}
	return Lease{}, false, nil
}

func (s *rangeLeases) Acquire(ctx context.Context, a netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) (Lease, error) {
	r := s.rangeOf(a)
	i, _ := r.Index(a)
	l := Lease{MAC: mac.String(), Expires: now.Add(d)}
	err := s.update(ctx, r, func(u usage) error {
		for m, e := range u {
			if e.Index == i && m != l.MAC && e.Expires.After(now) {
				return ErrTaken
			}
		}
		u[l.MAC] = rangeEntry{Index: i, Expires: l.Expires}
		return nil
	})
	return l, err
}

func (s *rangeLeases) Decline(ctx context.Context, a netip.Addr, mac net.HardwareAddr, now time.Time, d time.Duration) error {
	return errors.ErrUnsupported
}

func (s *rangeLeases) Release(ctx context.Context, a netip.Addr, mac net.HardwareAddr) error {
	return errors.ErrUnsupported
}

// BenchmarkDHCP measures DISCOVER→ACK transactions against one etcd with
// many concurrent clients, for this package's lease store and for the
// reference's one-key-per-range design, in the same run. A round is a boot
// storm (every client of 16 racks, 31 per rack, gets its first lease) and
// then a re-ask storm (every client asks again, as machines stuck in a boot
// loop do). Reported: transactions per second and p99 latency of each.
func BenchmarkDHCP(b *testing.B) {
	const racks, perRack, workers = 16, 31, 64
	stores := []struct {
		name string
		make func(b *testing.B, c *clientv3.Client) LeaseStore
	}{
		{"per-address", func(b *testing.B, c *clientv3.Client) LeaseStore { return startLeases(b, c) }},
		{"per-range-reference", func(b *testing.B, c *clientv3.Client) LeaseStore { return &rangeLeases{client: c} }},
	}
	for _, st := range stores {
		for _, phase := range []string{"boot", "reask"} {
			b.Run(st.name+"/"+phase, func(b *testing.B) {
				var lat []time.Duration
				var elapsed time.Duration
				var writes int64
				for round := range b.N {
					prefix := fmt.Sprintf("%s/%d-%d/", b.Name(), benchRun.Add(1), round)
					client := etcdtest.NewClient(b, prefix)
					h := &Handler{Config: staticConfig(testIPAM(), nil), Leases: st.make(b, client), AdvertiseURL: "http://s"}
					storm := func() ([]time.Duration, time.Duration) {
						return runStorm(b, h, racks, perRack, workers)
					}
					if phase == "reask" {
						storm() // leases exist; measure asking again
					}
					rev0 := revision(b, client)
					l, e := storm()
					writes += revision(b, client) - rev0
					lat = append(lat, l...)
					elapsed += e
				}
				slices.Sort(lat)
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tx/s")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(writes)/float64(len(lat)), "etcd-writes/tx")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func revision(b *testing.B, c *clientv3.Client) int64 {
	resp, err := c.Get(context.Background(), "x")
	if err != nil {
		b.Fatal(err)
	}
	return resp.Header.Revision
}

// runStorm has every client do DISCOVER then REQUEST, workers at a time,
// relayed from its rack's ToR; it returns each transaction's latency and
// the wall time.
func runStorm(b *testing.B, h *Handler, racks, perRack, workers int) ([]time.Duration, time.Duration) {
	type client struct {
		mac  net.HardwareAddr
		giad net.IP
	}
	var clients []client
	for r := range racks {
		gw := benchIPAM.NodeGateway(benchIPAM.NodeAddresses(uint(r), 4)[0])
		for i := range perRack {
			clients = append(clients, client{mac: net.HardwareAddr{2, 0, 0, byte(r), byte(i), 1}, giad: gw.AsSlice()})
		}
	}
	in := Incoming{IfIndex: 1, IfAddr: netip.MustParseAddr("10.69.0.3"), ServerAddr: netip.MustParseAddr("10.69.0.3")}
	lat := make([]time.Duration, len(clients))
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := clients[i]
				t0 := time.Now()
				for attempt := 0; ; attempt++ {
					off, err := h.Handle(context.Background(), discover(c.mac, dhcpv4.WithRelay(c.giad)), in)
					if err != nil {
						b.Error(err)
						return
					}
					ack, err := h.Handle(context.Background(), request(c.mac, dhcpv4.WithRelay(c.giad),
						withSID("10.69.0.3"), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(off.Msg.YourIPAddr))), in)
					if err != nil {
						b.Error(err)
						return
					}
					if ack.Msg.MessageType() == dhcpv4.MessageTypeAck {
						break
					}
					if attempt > 20 {
						b.Errorf("%s: no ACK after %d attempts", c.mac, attempt)
						return
					}
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := range clients {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat, time.Since(start)
}
