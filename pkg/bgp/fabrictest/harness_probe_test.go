package fabrictest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Probe sends UDP packets from one node's address to another's on several
// flows (distinct source ports, so that routers hashing on ports spread
// them over their ECMP paths) and records which arrive. It measures how
// long traffic to a node is interrupted when a link fails.
type Probe struct {
	interval time.Duration

	mu   sync.Mutex
	sent [][]time.Time // per flow, by sequence number
	recv [][]bool

	conns []*net.UDPConn
	srv   *net.UDPConn
	stop  chan struct{}
	wg    sync.WaitGroup
}

// StartProbe starts flows flows from src to dst's node address, each
// sending one packet per interval.
func StartProbe(src, dst *Node, flows int, interval time.Duration) (*Probe, error) {
	srv, err := dst.ListenUDP(netip.AddrPortFrom(dst.ID.Node, 0).String())
	if err != nil {
		return nil, err
	}
	p := &Probe{interval: interval, srv: srv, stop: make(chan struct{}),
		sent: make([][]time.Time, flows), recv: make([][]bool, flows)}
	for range flows {
		c, err := src.ListenUDP(netip.AddrPortFrom(src.ID.Node, 0).String())
		if err != nil {
			p.close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	p.wg.Add(2)
	go p.receive()
	go p.send(srv.LocalAddr().(*net.UDPAddr))
	return p, nil
}

func (p *Probe) send(to *net.UDPAddr) {
	defer p.wg.Done()
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	buf := make([]byte, 8)
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		for f, c := range p.conns {
			p.mu.Lock()
			seq := len(p.sent[f])
			p.sent[f] = append(p.sent[f], time.Now())
			p.mu.Unlock()
			binary.BigEndian.PutUint32(buf, uint32(f))
			binary.BigEndian.PutUint32(buf[4:], uint32(seq))
			c.WriteToUDP(buf, to)
		}
	}
}

func (p *Probe) receive() {
	defer p.wg.Done()
	buf := make([]byte, 64)
	for {
		n, _, err := p.srv.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n != 8 {
			continue
		}
		f, seq := int(binary.BigEndian.Uint32(buf)), int(binary.BigEndian.Uint32(buf[4:]))
		p.mu.Lock()
		if f < len(p.recv) && seq < 1<<24 {
			for len(p.recv[f]) <= seq {
				p.recv[f] = append(p.recv[f], false)
			}
			p.recv[f][seq] = true
		}
		p.mu.Unlock()
	}
}

func (p *Probe) close() {
	for _, c := range p.conns {
		c.Close()
	}
	p.srv.Close()
}

// Stop ends the probe.
func (p *Probe) Stop() {
	close(p.stop)
	p.close()
	p.wg.Wait()
}

// Flowing reports whether every flow has delivered a packet sent after t.
func (p *Probe) Flowing(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for f := range p.sent {
		ok := false
		for seq := len(p.recv[f]) - 1; seq >= 0 && p.sent[f][seq].After(t); seq-- {
			if p.recv[f][seq] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ErrNoLoss means no flow lost a packet: the failure did not touch the
// traffic.
var ErrNoLoss = errors.New("probe: no packet was lost")

// Outage returns how long traffic was interrupted by a failure at t0: for
// every flow that lost packets sent after t0, the time from t0 to the
// sending of its first packet that arrived again; the longest of these.
// It also returns how many packets were lost after t0.
func (p *Probe) Outage(t0 time.Time) (time.Duration, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Packets still in flight when the probe stopped are not losses.
	var end time.Time
	for _, sent := range p.sent {
		if n := len(sent); n > 0 && sent[n-1].After(end) {
			end = sent[n-1]
		}
	}
	end = end.Add(-100 * time.Millisecond)
	var worst time.Duration
	lost, affected := 0, 0
	for f, sent := range p.sent {
		recv := p.recv[f]
		got := func(seq int) bool { return seq < len(recv) && recv[seq] }
		first := -1
		for seq, ts := range sent {
			if ts.Before(t0) || ts.After(end) {
				continue
			}
			if !got(seq) {
				lost++
				if first < 0 {
					first = seq
				}
			}
		}
		if first < 0 {
			continue
		}
		affected++
		back := -1
		for seq := first + 1; seq < len(sent); seq++ {
			if got(seq) {
				back = seq
				break
			}
		}
		if back < 0 {
			return 0, lost, fmt.Errorf("probe: flow %d never recovered", f)
		}
		worst = max(worst, sent[back].Sub(t0))
	}
	if affected == 0 {
		return 0, 0, ErrNoLoss
	}
	return worst, lost, nil
}

// SentSince returns how many packets were sent after t, over all flows,
// leaving out the last 100 ms (still in flight when the probe stopped), as
// Outage does.
func (p *Probe) SentSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var end time.Time
	for _, sent := range p.sent {
		if n := len(sent); n > 0 && sent[n-1].After(end) {
			end = sent[n-1]
		}
	}
	end = end.Add(-100 * time.Millisecond)
	n := 0
	for _, sent := range p.sent {
		for _, ts := range sent {
			if !ts.Before(t) && !ts.After(end) {
				n++
			}
		}
	}
	return n
}
