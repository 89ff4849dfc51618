package fabrictest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/vishvananda/netlink"
)

var reps = flag.Int("fabric.reps", 7, "repetitions of each fabric benchmark measurement")

// timerSets are the settings compared: the reference deployment's and ours.
var timerSets = []struct {
	name         string
	node, router bgp.Timers
}{
	{"reference", bgp.ReferenceNodeTimers(), bgp.ReferenceRouterTimers()},
	{"fast", bgp.FastTimers(), bgp.FastTimers()},
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkFailover cuts one uplink of a node (the ToR's port goes down, so
// the node loses carrier) while another rack sends it 8 UDP flows, 1 packet
// per flow every 2 ms; the spine hashes the flows over both ToRs of the
// node's rack. failover-ms is the median time from the cut until every
// interrupted flow delivers again; ecmp-back-ms is the median time from the
// repair until a rack neighbour routes to the node over both links again.
func BenchmarkFailover(b *testing.B) {
	agentBinary := requirements(b)
	for _, ts := range timerSets {
		b.Run(ts.name, func(b *testing.B) {
			f := New(b, Options{Agent: agentBinary, NodeTimers: ts.node, RouterTimers: ts.router})
			if err := f.StartAgents(); err != nil {
				b.Fatal(err)
			}
			if err := f.WaitReady(60 * time.Second); err != nil {
				b.Fatal(err)
			}
			a, c, src := f.Nodes[0], f.Nodes[1], f.Nodes[2]
			both := []netip.Addr{a.ID.Links[0].Address.Addr(), a.ID.Links[1].Address.Addr()}
			var failover, back []time.Duration
			lost := 0
			b.ResetTimer()
			for i := 0; len(failover) < *reps; i++ {
				if i > 3*(*reps) {
					b.Fatal("too many repetitions where the cut link carried no flow")
				}
				tor := 1 + i%2
				p, err := StartProbe(src, a, 8, 2*time.Millisecond)
				if err != nil {
					b.Fatal(err)
				}
				warm := time.Now()
				if err := Eventually(5*time.Second, 10*time.Millisecond, func() error {
					if !p.Flowing(warm) {
						return errors.New("probe flows do not arrive")
					}
					return nil
				}); err != nil {
					p.Stop()
					b.Fatal(err)
				}
				if err := a.SetLink(tor, false); err != nil {
					b.Fatal(err)
				}
				// Every packet sent from now on meets the cut link.
				t0 := time.Now()
				// Wait until every flow delivers packets sent after the cut
				// again, then a little more.
				Eventually(20*time.Second, 20*time.Millisecond, func() error {
					since := time.Now().Add(-50 * time.Millisecond)
					if since.Before(t0) {
						since = t0
					}
					if time.Since(t0) < 50*time.Millisecond || !p.Flowing(since) {
						return errors.New("not yet")
					}
					return nil
				})
				time.Sleep(300 * time.Millisecond)
				p.Stop()
				d, n, err := p.Outage(t0)
				t1 := time.Now()
				if err := a.SetLink(tor, true); err != nil {
					b.Fatal(err)
				}
				if err := Eventually(60*time.Second, 5*time.Millisecond, func() error {
					got, err := c.NextHops(a.ID.Node)
					if err != nil || !slices.Equal(got, both) {
						return fmt.Errorf("%s -> %s: %v %v", c.Name, a.ID.Node, got, err)
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				repaired := time.Since(t1)
				// Let every router see both paths again before the next cut.
				if err := f.WaitReady(60 * time.Second); err != nil {
					b.Fatal(err)
				}
				if err := waitSpineECMP(f, a); err != nil {
					b.Fatal(err)
				}
				if errors.Is(err, ErrNoLoss) {
					b.Logf("cut of tor%d carried no flow; repeating", tor)
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
				failover = append(failover, d)
				back = append(back, repaired)
				lost += n
			}
			b.StopTimer()
			b.ReportMetric(ms(median(failover)), "failover-ms")
			b.ReportMetric(ms(slices.Max(failover)), "failover-max-ms")
			b.ReportMetric(ms(median(back)), "ecmp-back-ms")
			b.ReportMetric(float64(lost)/float64(len(failover)), "lost-pkts/cut")
			b.Logf("%s: failover %v, ECMP back %v", ts.name, failover, back)
		})
	}
}

// reset returns a node to its state before the agent first ran: agent and
// BIRD stopped (BIRD removes its routes), node0 gone, NICs down without
// addresses.
func (n *Node) reset() error {
	if err := n.StopNode(); err != nil {
		return err
	}
	nl := n.Host.Netlink()
	if l, err := nl.LinkByName("node0"); err == nil {
		if err := nl.LinkDel(l); err != nil {
			return err
		}
	}
	for _, name := range []string{"eth0", "eth1"} {
		l, err := nl.LinkByName(name)
		if err != nil {
			return err
		}
		addrs, _ := nl.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			nl.AddrDel(l, &a)
		}
		nl.LinkSetDown(l)
	}
	return nil
}

// BenchmarkStartup starts the agents of all four nodes at once on nodes
// fresh from boot (no node0, NICs down and bare) next to running ToRs.
// sessions-ms is the median, over nodes and repetitions, of the time from
// starting the agent until BIRD reports both ToR sessions established;
// ready-ms until the agent reports ready (default route installed);
// all-ms the median time until the last node's sessions are up. It also
// reports the memory of one node's agent and BIRD after start-up.
func BenchmarkStartup(b *testing.B) {
	agentBinary := requirements(b)
	for _, ts := range timerSets {
		b.Run(ts.name, func(b *testing.B) {
			f := New(b, Options{Agent: agentBinary, NodeTimers: ts.node, RouterTimers: ts.router})
			var sessions, ready, all []time.Duration
			var agentRSS, birdRSS []int64
			b.ResetTimer()
			for range *reps {
				for _, n := range f.Nodes {
					if err := n.reset(); err != nil {
						b.Fatal(err)
					}
				}
				// The ToRs notice the nodes are gone.
				time.Sleep(500 * time.Millisecond)
				var mu sync.Mutex
				var wg sync.WaitGroup
				start := time.Now()
				var last time.Duration
				for _, n := range f.Nodes {
					if err := n.StartAgent(); err != nil {
						b.Fatal(err)
					}
				}
				for _, n := range f.Nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx := context.Background()
						Eventually(60*time.Second, 5*time.Millisecond, func() error {
							if !n.Established(ctx) {
								return errors.New("not established")
							}
							return nil
						})
						up := time.Since(start)
						Eventually(60*time.Second, 5*time.Millisecond, func() error {
							st, err := n.Status()
							if err != nil || !st.Ready {
								return errors.New("not ready")
							}
							return nil
						})
						rd := time.Since(start)
						mu.Lock()
						sessions = append(sessions, up)
						ready = append(ready, rd)
						last = max(last, up)
						mu.Unlock()
					}()
				}
				wg.Wait()
				all = append(all, last)
				n := f.Nodes[0]
				if rss, err := RSS(n.AgentPID()); err == nil {
					agentRSS = append(agentRSS, rss)
				}
				if p, err := n.BIRDDaemon().Find(context.Background()); err == nil {
					if rss, err := RSS(p.PID); err == nil {
						birdRSS = append(birdRSS, rss)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(ms(median(sessions)), "sessions-ms")
			b.ReportMetric(ms(median(ready)), "ready-ms")
			b.ReportMetric(ms(median(all)), "all-ms")
			if len(agentRSS) > 0 && len(birdRSS) > 0 {
				slices.Sort(agentRSS)
				slices.Sort(birdRSS)
				b.ReportMetric(float64(agentRSS[len(agentRSS)/2])/(1<<20), "agent-RSS-MiB")
				b.ReportMetric(float64(birdRSS[len(birdRSS)/2])/(1<<20), "bird-RSS-MiB")
			}
			b.Logf("%s: sessions %v", ts.name, sessions)
		})
	}
}

// BenchmarkBIRDCrash kills a node's BIRD with SIGKILL (the agent restarts
// it at once) while a node of the other rack sends it 8 UDP flows, 1 packet
// per flow every 2 ms, without and with graceful restart (the agent's
// graceful-restart setting; the routers are the same). outage-ms is the
// median of the longest interruption of a flow (0 when nothing was lost),
// lost-pkts the median of the packets lost per crash, recovered-ms the
// median time until the node is ready and routed over both links everywhere
// again.
func BenchmarkBIRDCrash(b *testing.B) {
	agentBinary := requirements(b)
	for _, gr := range []bool{false, true} {
		name := "without-graceful-restart"
		if gr {
			name = "graceful-restart"
		}
		b.Run(name, func(b *testing.B) {
			f := New(b, Options{Agent: agentBinary, AgentConfig: map[string]any{"graceful-restart": gr}})
			if err := f.StartAgents(); err != nil {
				b.Fatal(err)
			}
			if err := f.WaitReady(60 * time.Second); err != nil {
				b.Fatal(err)
			}
			a, c, src := f.Nodes[0], f.Nodes[1], f.Nodes[2]
			var outage, recovered []time.Duration
			var lost []int
			b.ResetTimer()
			for range *reps {
				if err := waitSpineECMP(f, a); err != nil {
					b.Fatal(err)
				}
				r, err := f.CrashBIRD(src, a, c)
				if err != nil {
					b.Fatal(err)
				}
				outage = append(outage, r.Outage)
				recovered = append(recovered, r.Recovered)
				lost = append(lost, r.Lost)
			}
			b.StopTimer()
			b.Logf("%s: outage %v, lost %v, recovered %v", name, outage, lost, recovered)
			slices.Sort(lost)
			b.ReportMetric(ms(median(outage)), "outage-ms")
			b.ReportMetric(ms(slices.Max(outage)), "outage-max-ms")
			b.ReportMetric(float64(lost[len(lost)/2]), "lost-pkts")
			b.ReportMetric(ms(median(recovered)), "recovered-ms")
		})
	}
}
