package dhcpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/testutil"
)

// BenchmarkDHCPUDP is BenchmarkDHCP's boot storm over real sockets: the
// server runs in a network namespace, and a relay in another (a socket on
// port 67 with the 16 racks' giaddrs) sends every client's DISCOVER and
// REQUEST through the kernel and waits for OFFER and ACK. It needs root;
// elsewhere it is skipped.
func BenchmarkDHCPUDP(b *testing.B) {
	testutil.RequireRoot(b)
	const racks, perRack, workers = 16, 31, 64
	rnd := make([]byte, 3)
	rand.Read(rnd)
	srvNS, torNS := "db"+hex.EncodeToString(rnd)+"-s", "db"+hex.EncodeToString(rnd)+"-t"
	sh := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srvNS, torNS} {
		sh("ip", "netns", "add", ns)
		b.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
		sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh("ip", "link", "add", "up0", "netns", srvNS, "type", "veth", "peer", "name", "down0", "netns", torNS)
	sh("ip", "-n", srvNS, "addr", "add", "10.100.0.1/30", "dev", "up0")
	sh("ip", "-n", torNS, "addr", "add", "10.100.0.2/30", "dev", "down0")
	sh("ip", "-n", srvNS, "link", "set", "up0", "up")
	sh("ip", "-n", torNS, "link", "set", "down0", "up")
	sh("ip", "-n", srvNS, "route", "add", "10.69.0.0/16", "via", "10.100.0.2")
	var gws []net.IP
	for r := range racks {
		gw := benchIPAM.NodeGateway(benchIPAM.NodeAddresses(uint(r), 4)[0])
		sh("ip", "-n", torNS, "addr", "add", gw.String()+"/32", "dev", "lo")
		gws = append(gws, gw.AsSlice())
	}

	stores := []struct {
		name string
		make func(b *testing.B, c *clientv3.Client) LeaseStore
	}{
		{"per-address", func(b *testing.B, c *clientv3.Client) LeaseStore { return startLeases(b, c) }},
		{"per-range-reference", func(b *testing.B, c *clientv3.Client) LeaseStore { return &rangeLeases{client: c} }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			var lat []time.Duration
			var elapsed time.Duration
			for round := range b.N {
				client := etcdtest.NewClient(b, fmt.Sprintf("%s/%d-%d/", b.Name(), benchRun.Add(1), round))
				srv := &Server{Bind: "0.0.0.0:67", Handler: &Handler{Config: staticConfig(testIPAM(), nil), Leases: st.make(b, client), AdvertiseURL: "http://s"}}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				ready := make(chan error, 1)
				inNetNS(b, srvNS, func() {
					if _, err := srv.Listen(ctx); err != nil {
						ready <- err
						return
					}
					ready <- nil
					srv.Run(ctx)
					close(done)
				})
				if err := <-ready; err != nil {
					b.Fatal(err)
				}
				var conn *net.UDPConn
				var lerr error
				got := make(chan struct{})
				inNetNS(b, torNS, func() {
					conn, lerr = net.ListenUDP("udp4", &net.UDPAddr{Port: 67})
					close(got)
				})
				<-got
				if lerr != nil {
					b.Fatal(lerr)
				}
				l, e := udpStorm(b, conn, gws, perRack, workers)
				lat, elapsed = append(lat, l...), elapsed+e
				conn.Close()
				cancel()
				<-done
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// inNetNS runs f on a thread switched into namespace ns; the thread ends
// with f.
func inNetNS(b *testing.B, ns string, f func()) {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		errc <- err
		if err == nil {
			f()
		}
	}()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// udpStorm relays every client's DISCOVER and REQUEST to the server at
// 10.100.0.1:67, workers at a time, matching answers by transaction id.
func udpStorm(b *testing.B, conn *net.UDPConn, gws []net.IP, perRack, workers int) ([]time.Duration, time.Duration) {
	server := &net.UDPAddr{IP: net.IPv4(10, 100, 0, 1), Port: 67}
	var mu sync.Mutex
	waiting := map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				continue
			}
			mu.Lock()
			ch := waiting[m.TransactionID]
			mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default:
				}
			}
		}
	}()
	exchange := func(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
		ch := make(chan *dhcpv4.DHCPv4, 1)
		mu.Lock()
		waiting[req.TransactionID] = ch
		mu.Unlock()
		defer func() { mu.Lock(); delete(waiting, req.TransactionID); mu.Unlock() }()
		for range 5 {
			if _, err := conn.WriteTo(req.ToBytes(), server); err != nil {
				return nil, err
			}
			select {
			case m := <-ch:
				return m, nil
			case <-time.After(2 * time.Second):
			}
		}
		return nil, fmt.Errorf("no answer to %s", req.MessageType())
	}
	type client struct {
		mac net.HardwareAddr
		gw  net.IP
	}
	var clients []client
	for r, gw := range gws {
		for i := range perRack {
			clients = append(clients, client{net.HardwareAddr{2, 0, 1, byte(r), byte(i), 1}, gw})
		}
	}
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
					off, err := exchange(discover(c.mac, dhcpv4.WithRelay(c.gw)))
					if err != nil {
						b.Error(err)
						return
					}
					ack, err := exchange(request(c.mac, dhcpv4.WithRelay(c.gw), dhcpv4.WithTransactionID(off.TransactionID),
						dhcpv4.WithOption(dhcpv4.OptServerIdentifier(off.ServerIdentifier())),
						dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(off.YourIPAddr))))
					if err != nil {
						b.Error(err)
						return
					}
					if ack.MessageType() == dhcpv4.MessageTypeAck {
						break
					}
					if attempt > 20 {
						b.Errorf("%s: no ACK", c.mac)
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
