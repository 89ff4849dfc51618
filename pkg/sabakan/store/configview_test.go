package store

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// countKV counts the requests made through a client's KV.
type countKV struct {
	clientv3.KV
	n atomic.Int64
}

func (c *countKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.n.Add(1)
	return c.KV.Get(ctx, key, opts...)
}

func (c *countKV) Txn(ctx context.Context) clientv3.Txn {
	c.n.Add(1)
	return c.KV.Txn(ctx)
}

func (c *countKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	c.n.Add(1)
	return c.KV.Do(ctx, op)
}

// waitView polls s.ConfigView until ok accepts it, for at most bound, and
// returns how long that took.
func waitView(t *testing.T, s *Store, bound time.Duration, ok func(*sabakan.IPAMConfig, *sabakan.DHCPConfig) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok(s.ConfigView()) {
		if time.Since(start) > bound {
			ipam, dhcp := s.ConfigView()
			t.Fatalf("the view did not follow within %s: ipam %+v, dhcp %+v", bound, ipam, dhcp)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestConfigView: the IPAM and DHCP configuration written by another
// server reach a store's view within a bound (the watch's delay), the view
// asks etcd nothing, and a store opened on a configured prefix serves the
// configuration at once (there is no moment with an empty view standing in
// for it).
func TestConfigView(t *testing.T) {
	ctx := context.Background()
	prefix := t.Name() + "/"
	a := openStore(t, prefix)
	other := openStore(t, prefix)
	counter := &countKV{KV: a.client.KV}
	a.client.KV = counter

	if ipam, dhcp := a.ConfigView(); ipam != nil || dhcp != nil {
		t.Fatalf("unset configuration in the view: %+v %+v", ipam, dhcp)
	}
	const bound = 5 * time.Second
	if err := other.PutIPAM(ctx, testIPAM()); err != nil {
		t.Fatal(err)
	}
	d := waitView(t, a, bound, func(ipam *sabakan.IPAMConfig, _ *sabakan.DHCPConfig) bool {
		return ipam != nil && *ipam == *testIPAM()
	})
	t.Logf("IPAM PUT visible after %s", d)
	for i, dns := range []string{"10.0.0.53", "10.0.0.54"} {
		want := &sabakan.DHCPConfig{LeaseMinutes: uint(30 + i), DNSServers: []string{dns}}
		if err := other.PutDHCP(ctx, want); err != nil {
			t.Fatal(err)
		}
		d := waitView(t, a, bound, func(_ *sabakan.IPAMConfig, dhcp *sabakan.DHCPConfig) bool {
			return reflect.DeepEqual(dhcp, want)
		})
		t.Logf("DHCP PUT %d visible after %s", i, d)
	}
	if n := counter.n.Load(); n != 0 {
		t.Errorf("ConfigView made %d etcd requests, want 0", n)
	}

	// The results are copies.
	_, dhcp := a.ConfigView()
	dhcp.DNSServers[0] = "changed"
	if _, again := a.ConfigView(); again.DNSServers[0] != "10.0.0.54" {
		t.Errorf("changing a result changed the view: %v", again.DNSServers)
	}

	// A store opened now serves the configuration without waiting.
	fresh := openStore(t, prefix)
	ipam, dhcp := fresh.ConfigView()
	if ipam == nil || *ipam != *testIPAM() || dhcp == nil || dhcp.DNSServers[0] != "10.0.0.54" {
		t.Errorf("right after Open the view is %+v %+v", ipam, dhcp)
	}
}
