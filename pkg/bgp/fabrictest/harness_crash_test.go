package fabrictest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CrashResult is what a BIRD crash did to the traffic towards the node.
type CrashResult struct {
	// Outage is the longest interruption of a flow (0 when nothing was
	// lost); Lost and Sent count the packets sent after the crash.
	Outage     time.Duration
	Lost, Sent int
	// Recovered is the time from the crash until the agent reported ready
	// again with a new BIRD, both ToRs held fresh routes from it again (no
	// longer the stale ones kept through the restart), and the rack
	// neighbour and the spines routed to the node over both links.
	Recovered time.Duration
	// OldPID and NewPID are the killed and the restarted BIRD.
	OldPID, NewPID int
}

// CrashBIRD kills n's BIRD with SIGKILL while src sends n's node address 8
// UDP flows (one packet per flow every 2 ms), waits until n's agent has
// restarted BIRD and the network is whole again (n ready and not degraded,
// both ToRs with fresh routes to n, neighbour routing to n over both of n's
// links, every spine over both of n's ToRs), lets the probe run 1 s more,
// and reports what was lost.
func (f *Fabric) CrashBIRD(src, n, neighbour *Node) (*CrashResult, error) {
	old, err := n.BIRDDaemon().Find(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	p, err := StartProbe(src, n, 8, 2*time.Millisecond)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	warm := time.Now()
	if err := Eventually(5*time.Second, 10*time.Millisecond, func() error {
		if !p.Flowing(warm) {
			return errors.New("probe flows do not arrive")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		return nil, err
	}
	res := &CrashResult{OldPID: old.PID}
	both := []netip.Addr{n.ID.Links[0].Address.Addr(), n.ID.Links[1].Address.Addr()}
	err = Eventually(30*time.Second, 10*time.Millisecond, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		if st.BIRDPID == old.PID || st.BIRDPID == 0 || !st.Ready || st.Degraded {
			return fmt.Errorf("%s: BIRD %d, ready %v, degraded %v: %s", n.Name, st.BIRDPID, st.Ready, st.Degraded, st.Reason)
		}
		res.NewPID = st.BIRDPID
		for t := 1; t <= 2; t++ {
			if stale, err := n.ToR(t).Stale(n.ID.Node); err != nil || stale {
				return fmt.Errorf("%s: route to %s stale %v (%v)", n.ToR(t).Spec.Name, n.ID.Node, stale, err)
			}
		}
		got, err := neighbour.NextHops(n.ID.Node)
		if err != nil || !slices.Equal(got, both) {
			return fmt.Errorf("%s -> %s: %v %v, want %v", neighbour.Name, n.ID.Node, got, err, both)
		}
		return nil
	})
	if err == nil {
		err = waitSpineECMP(f, n)
	}
	if err != nil {
		return nil, err
	}
	res.Recovered = time.Since(t0)
	time.Sleep(time.Second)
	p.Stop()
	stopped = true
	res.Sent = p.SentSince(t0)
	res.Outage, res.Lost, err = p.Outage(t0)
	if errors.Is(err, ErrNoLoss) {
		err = nil
	}
	return res, err
}

// waitSpineECMP waits until every spine routes to n over both ToRs.
func waitSpineECMP(f *Fabric, n *Node) error {
	for _, r := range f.Routers {
		if r.Spec.Role != "spine" {
			continue
		}
		err := Eventually(30*time.Second, 10*time.Millisecond, func() error {
			got, err := r.Host.Route(netip.PrefixFrom(n.ID.Node, 32))
			if err != nil || len(got) != 2 {
				return fmt.Errorf("%s -> %s: %v %v", r.Spec.Name, n.ID.Node, got, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Stale reports whether the router's BIRD holds its route to dst/32 only as
// a stale one, kept for a restarting neighbour (long-lived graceful restart
// marks it with the LLGR_STALE community, 65535:6). A missing route is an
// error.
func (r *Router) Stale(dst netip.Addr) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	reply, err := r.BIRD.Client().Do(ctx, "show route for "+netip.PrefixFrom(dst, 32).String()+" all")
	if err == nil {
		err = reply.Err()
	}
	if err != nil {
		return false, err
	}
	text := ""
	for _, l := range reply {
		text += l.Text + "\n"
	}
	if !strings.Contains(text, dst.String()+"/32") {
		return false, fmt.Errorf("%s: no route to %s", r.Spec.Name, dst)
	}
	return strings.Contains(text, "(65535,6)"), nil
}
