// Package agent is the BGP node agent: it learns the machine's identity
// (sabakan, or a file on boot servers), configures node0 and the uplinks,
// renders and applies BIRD's configuration, keeps BIRD running, and
// reports readiness on /health and /status and as Prometheus metrics.
//
// The agent never stops BIRD: when the agent exits or restarts, BIRD and
// the routes it installed stay, and the next agent adopts the running
// BIRD without touching its sessions.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/bgp/bird"
	"github.com/openneco/neco/pkg/bgp/netconf"
	"github.com/openneco/neco/pkg/daemon"
	"github.com/prometheus/client_golang/prometheus"
)

// Status is the agent's view of the node, served on /status.
type Status struct {
	Identity *bgp.Identity `json:"identity,omitempty"`
	bgp.Readiness
	bgp.Snapshot
	// RoutesByPaths counts BIRD's routes in the main table by next hops.
	RoutesByPaths map[int]int `json:"routes-by-paths"`
	Node0Kind     string      `json:"node0-kind,omitempty"`
	BIRDPID       int         `json:"bird-pid,omitempty"`
	BIRDRestarts  int         `json:"bird-restarts"`
	// ConfigError is BIRD's (or the renderer's) complaint about the
	// newest configuration; the previous one stays in force meanwhile.
	ConfigError   string    `json:"config-error,omitempty"`
	ConfigApplied time.Time `json:"config-applied,omitzero"`
	Updated       time.Time `json:"updated,omitzero"`
}

// Agent is one node's BGP agent.
type Agent struct {
	cfg  *Config
	log  *slog.Logger
	m    *metrics
	reg  *prometheus.Registry
	http *http.Client

	mu     sync.Mutex
	status Status

	// Set up by Run.
	id     *bgp.Identity
	host   *netconf.Host
	plan   *netconf.Plan
	daemon *bird.Daemon
	proc   *bird.Process
	rpSet  bool
}

// New returns an agent that registers its metrics in reg.
func New(cfg *Config, reg *prometheus.Registry, log *slog.Logger) *Agent {
	return &Agent{
		cfg:  cfg,
		log:  log,
		reg:  reg,
		m:    newMetrics(reg),
		http: &http.Client{Timeout: 10 * time.Second},
	}
}

// Status returns a copy of the current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *Agent) updateStatus(f func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.status)
}

// Health fails unless the node's network is ready (a degraded network is
// healthy; /status and the metrics tell the difference).
func (a *Agent) Health(context.Context) error {
	st := a.Status()
	if !st.Ready {
		if st.Reason == "" {
			return errors.New("starting")
		}
		return errors.New(st.Reason)
	}
	return nil
}

// Handler serves GET /health, /status (JSON) and /metrics.
func (a *Agent) Handler() http.Handler {
	mux := daemon.MetricsMux(a.reg, a.Health)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	return mux
}

// Run sets the node up and keeps it so until ctx ends. It returns an error
// without changing anything when the identity or the settings are invalid
// or the NICs are missing; it returns nil when ctx ends, leaving BIRD
// running.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	src, err := a.loadIdentity(ctx)
	if err != nil {
		return err
	}
	id, err := src.Identity(a.cfg.AS)
	if err != nil {
		return err
	}
	a.id = id
	a.updateStatus(func(s *Status) { s.Identity = id })
	a.log.Info("identity", "serial", id.Serial, "rack", id.Rack, "index", id.Index, "as", id.AS,
		"node_address", id.Node.String(), "tor1", id.Links[0].ToR.String(), "tor2", id.Links[1].ToR.String())

	// Render and parse before touching anything: invalid settings change
	// nothing. A configuration BIRD rejects is fatal only when there is no
	// previous one to keep running.
	text, err := a.render()
	if err != nil {
		return err
	}
	if err := bird.Parse(ctx, a.cfg.BIRD, a.cfg.StateDir, text); err != nil {
		if _, serr := os.Stat(a.cfg.birdConfig()); serr != nil {
			return fmt.Errorf("agent: BIRD rejects the configuration and there is no previous one: %w", err)
		}
	}
	if a.host == nil {
		if a.host, err = netconf.Current(); err != nil {
			return err
		}
		defer a.host.Close()
	}
	a.plan = a.netPlan()
	res, err := a.host.Apply(a.plan)
	if err != nil {
		return err
	}
	a.logChanges(res.Changes)
	a.updateStatus(func(s *Status) { s.Node0Kind = string(res.Kind) })
	if res.Kind == netconf.KindIFB {
		a.log.Info("node0 is an ifb link: this kernel has no dummy link type")
	}
	if err := writeCache(a.cfg.identityCache(), src); err != nil {
		a.log.Warn("identity not cached", "error", err)
	}

	a.daemon = &bird.Daemon{
		Binary:   a.cfg.BIRD,
		Config:   a.cfg.birdConfig(),
		Socket:   a.cfg.birdSocket(),
		PIDFile:  a.cfg.birdPIDFile(),
		Output:   a.cfg.birdOutput(),
		Realtime: a.cfg.BIRDRealtime,
	}
	if err := a.startBIRD(ctx, text); err != nil {
		return err
	}

	poll := time.NewTicker(a.cfg.PollInterval.D())
	defer poll.Stop()
	reconcile := time.NewTicker(a.cfg.ReconcileInterval.D())
	defer reconcile.Stop()
	a.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping; BIRD keeps running", "bird_pid", a.proc.PID)
			return nil
		case <-a.proc.Done():
			if err := a.restartBIRD(ctx); err != nil {
				return nil // ctx ended
			}
			a.poll(ctx)
		case <-poll.C:
			a.poll(ctx)
		case <-reconcile.C:
			a.reconcile(ctx)
		}
	}
}

// loadIdentity reads the identity file, or asks sabakan; while sabakan
// cannot be reached it falls back to the identity cached by an earlier run,
// or retries.
func (a *Agent) loadIdentity(ctx context.Context) (*bgp.Source, error) {
	if a.cfg.IdentityFile != "" {
		return ReadIdentityFile(a.cfg.IdentityFile)
	}
	serial, err := ReadSerial(a.cfg.Serial, a.cfg.SerialFile)
	if err != nil {
		return nil, err
	}
	wait := time.Second
	for {
		src, err := FetchSabakan(ctx, a.http, a.cfg.SabakanURL, serial)
		var te *TransientError
		if err == nil || !errors.As(err, &te) {
			return src, err
		}
		if cached, cerr := ReadIdentityFile(a.cfg.identityCache()); cerr == nil && cached.Machine.Spec.Serial == serial {
			a.log.Warn("sabakan is unreachable; using the identity cached by an earlier run", "error", err)
			return cached, nil
		}
		a.log.Warn("sabakan is unreachable; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (a *Agent) netPlan() *netconf.Plan {
	kind, _ := netconf.ParseKind(a.cfg.Node0Kind)
	p := &netconf.Plan{MTU: a.cfg.MTU, Kind: kind}
	for i := range p.Uplinks {
		p.Uplinks[i] = netconf.Uplink{Name: a.cfg.Interfaces[i], Address: a.id.Links[i].Address}
	}
	p.Addresses = append(p.Addresses, netconf.Virtual{Name: bgp.Node0, Address: a.id.Node})
	for _, v := range a.cfg.VirtualAddresses {
		p.Addresses = append(p.Addresses, netconf.Virtual{Name: v.Name, Address: v.Address})
	}
	return p
}

// render returns BIRD's configuration for the current settings and the
// current bird-extra file.
func (a *Agent) render() ([]byte, error) {
	extra := ""
	if a.cfg.BIRDExtra != "" {
		b, err := os.ReadFile(a.cfg.BIRDExtra)
		if err != nil {
			return nil, fmt.Errorf("agent: bird-extra: %w", err)
		}
		extra = string(b)
	}
	return bgp.RenderNode(&bgp.NodeConfig{
		ID:         a.id,
		Interfaces: [2]string{a.cfg.Interfaces[0], a.cfg.Interfaces[1]},
		Virtual:    a.cfg.VirtualAddresses,
		PodTable:   a.cfg.PodTable,
		Timers:     a.cfg.Timers,
		LogFile:    a.cfg.birdLog(),
		LogSize:    a.cfg.BIRDLogSize,
		Extra:      extra,

		GracefulRestart: a.cfg.GracefulRestart,
	})
}

func (a *Agent) logChanges(changes []string) {
	for _, c := range changes {
		a.log.Info("network changed", "change", c)
		a.m.linkChanges.Inc()
	}
}

// startBIRD adopts the BIRD that already runs (after an agent restart) and
// brings its configuration up to date, or starts a new one.
func (a *Agent) startBIRD(ctx context.Context, text []byte) error {
	var err error
	for range 20 {
		a.proc, err = a.daemon.Find(ctx)
		if err == nil || errors.Is(err, bird.ErrNotRunning) {
			break
		}
		select { // BIRD may be starting: give it a moment
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	switch {
	case err == nil:
		a.log.Info("adopted the running BIRD", "bird_pid", a.proc.PID)
		a.applyConfig(ctx, text)
		a.setPID()
		return nil
	case !errors.Is(err, bird.ErrNotRunning):
		return fmt.Errorf("agent: a BIRD of this agent runs but does not answer: %w", err)
	}
	if err := bird.WriteChecked(ctx, a.cfg.BIRD, a.cfg.birdConfig(), text); err != nil {
		if _, serr := os.Stat(a.cfg.birdConfig()); serr != nil {
			return fmt.Errorf("agent: BIRD rejects the configuration and there is no previous one: %w", err)
		}
		a.configRejected(err)
	} else {
		a.configAccepted()
	}
	return a.spawn(ctx)
}

// spawn starts BIRD. If a previous BIRD died and left its routes in the
// kernel (a crash, a SIGKILL, "birdc graceful restart"), the new one starts
// in graceful restart recovery: it keeps those routes, and the ToRs keep
// the node's, until the BGP sessions are back and in sync. Nothing here
// removes a route.
func (a *Agent) spawn(ctx context.Context) error {
	start, recovery := a.daemon.Start, 0
	if a.cfg.GracefulRestart {
		if routes, err := a.host.BIRDRoutes(); err != nil {
			a.log.Warn("reading routes", "error", err)
		} else {
			for _, n := range routes.ByPaths {
				recovery += n
			}
		}
		if recovery > 0 {
			start = a.daemon.StartRecovery
		}
	}
	proc, err := start(ctx)
	var te *bird.TuneError
	if errors.As(err, &te) {
		if te.Realtime != nil {
			a.log.Warn("BIRD runs without real-time priority", "error", te.Realtime)
		}
		if te.OOM != nil {
			a.log.Warn("BIRD runs without OOM protection", "error", te.OOM)
		}
		err = nil
	}
	if err != nil {
		return err
	}
	a.proc = proc
	a.setPID()
	if recovery > 0 {
		a.log.Info("started BIRD in graceful restart recovery", "bird_pid", proc.PID, "kept_routes", recovery)
	} else {
		a.log.Info("started BIRD", "bird_pid", proc.PID)
	}
	return nil
}

func (a *Agent) setPID() {
	a.updateStatus(func(s *Status) { s.BIRDPID = a.proc.PID })
}

// restartBIRD starts BIRD again after it exited, with the last
// configuration it accepted, backing off while it keeps failing.
func (a *Agent) restartBIRD(ctx context.Context) error {
	a.log.Error("BIRD exited; restarting it", "bird_pid", a.proc.PID, "output", a.cfg.birdOutput())
	a.m.birdRestarts.Inc()
	a.updateStatus(func(s *Status) {
		s.BIRDRestarts++
		s.BIRDRunning = false
		s.Readiness = bgp.Decide(s.Snapshot)
	})
	a.m.birdUp.Set(0)
	a.m.ready.Set(0)
	wait := 500 * time.Millisecond
	for {
		err := a.spawn(ctx)
		if err == nil {
			return nil
		}
		a.log.Error("BIRD does not start", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// applyConfig hands BIRD a configuration; a rejected one is reported and
// the running one stays.
func (a *Agent) applyConfig(ctx context.Context, text []byte) {
	changed, err := bird.Apply(ctx, a.daemon.Client(), a.cfg.birdConfig(), text)
	switch {
	case err != nil:
		a.configRejected(err)
	case changed:
		a.log.Info("BIRD configuration applied", "file", a.cfg.birdConfig())
		a.configAccepted()
	default:
		a.updateStatus(func(s *Status) { s.ConfigError = "" })
	}
}

func (a *Agent) configRejected(err error) {
	a.log.Error("BIRD configuration rejected; the previous one stays in force", "error", err)
	a.m.configApplies.WithLabelValues("rejected").Inc()
	a.updateStatus(func(s *Status) { s.ConfigError = err.Error() })
}

func (a *Agent) configAccepted() {
	a.m.configApplies.WithLabelValues("applied").Inc()
	a.updateStatus(func(s *Status) { s.ConfigError = ""; s.ConfigApplied = time.Now() })
}

// reconcile makes the links and BIRD's configuration true again.
func (a *Agent) reconcile(ctx context.Context) {
	res, err := a.host.Apply(a.plan)
	if res != nil {
		a.logChanges(res.Changes)
	}
	if err != nil {
		a.log.Error("network configuration", "error", err)
	}
	text, err := a.render()
	if err != nil {
		a.configRejected(err)
		return
	}
	if a.proc.Alive() {
		a.applyConfig(ctx, text)
	}
}

// poll reads BIRD and the kernel, decides readiness and updates status
// and metrics.
func (a *Agent) poll(ctx context.Context) {
	snap, routes := a.snapshot(ctx)
	r := bgp.Decide(snap)
	prev := a.Status()
	a.updateStatus(func(s *Status) {
		s.Snapshot = snap
		s.Readiness = r
		s.RoutesByPaths = routes
		s.Updated = time.Now()
	})
	st := a.Status()
	a.m.observe(&st)
	if r != prev.Readiness {
		a.log.Info("readiness", "ready", r.Ready, "degraded", r.Degraded, "reason", r.Reason)
	}
	if r.Ready && a.cfg.RPFilter && !a.rpSet {
		changes, err := a.host.SetRPFilter(a.plan)
		a.logChanges(changes)
		if err != nil {
			a.log.Error("rp_filter", "error", err)
		} else {
			a.rpSet = true
		}
	}
}

func (a *Agent) snapshot(ctx context.Context) (bgp.Snapshot, map[int]int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c := a.daemon.Client()
	snap := bgp.Snapshot{}
	for i, name := range []string{"tor1", "tor2"} {
		snap.Sessions = append(snap.Sessions, bgp.Session{Name: name, Peer: a.id.Links[i].ToR})
	}
	protocols, err := c.Protocols(ctx)
	if err == nil {
		snap.BIRDRunning = true
		for _, p := range protocols {
			for i := range snap.Sessions {
				if p.Name == snap.Sessions[i].Name {
					snap.Sessions[i].State = p.BGPState()
				}
			}
		}
		if sessions, err := c.BFDSessions(ctx); err == nil {
			for _, b := range sessions {
				for i := range snap.Sessions {
					if b.Address == snap.Sessions[i].Peer {
						snap.Sessions[i].BFD = b.State
					}
				}
			}
		}
	}
	routes, err := a.host.BIRDRoutes()
	if err != nil {
		a.log.Warn("reading routes", "error", err)
		return snap, nil
	}
	snap.DefaultRoutePaths = routes.DefaultPaths
	return snap, routes.ByPaths
}
