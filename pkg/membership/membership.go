// Package membership is the data center's failure detector. Every node and
// boot server runs a serf member (github.com/hashicorp/serf) that gossips its
// liveness and carries its health in tags; the boot servers' state setter
// reads the member list to drive machine states in sabakan.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Tags every member carries.
const (
	// TagSerial is the machine's serial number.
	TagSerial = "serial"
	// TagFailedUnits lists the failed systemd units, comma-separated; empty
	// when none failed. A member without it has not reported its health.
	TagFailedUnits = "systemd-units-failed"
)

// CheckFailed is the TagFailedUnits value when the health check itself
// failed, which the state setter reads as unhealthy.
const CheckFailed = "(health check failed)"

// DefaultPort is serf's customary gossip port.
const DefaultPort = 7946

// Config says how a member joins the cluster.
type Config struct {
	// NodeName must be unique in the cluster; the host name by default.
	NodeName string `json:"node-name,omitempty"`
	// Bind is the gossip address, host:port (TCP and UDP).
	Bind string `json:"bind"`
	// Advertise is the address other members reach this one at, when it
	// differs from Bind (for example Bind 0.0.0.0).
	Advertise string `json:"advertise,omitempty"`
	// Join lists members to contact at start and whenever this member is
	// alone: usually the boot servers, host or host:port.
	Join []string `json:"join,omitempty"`
	// Serial is published as TagSerial.
	Serial string `json:"serial,omitempty"`
	// CheckInterval is how often health is checked and published.
	CheckInterval time.Duration `json:"check-interval,omitempty"`
	// Profile tunes failure detection: "lan" (serf's data center defaults)
	// or "local" (fast detection on one machine, for tests).
	Profile string `json:"profile,omitempty"`
}

// Health reports the failed units of this machine.
type Health interface {
	FailedUnits(ctx context.Context) ([]string, error)
}

// Agent is a running member.
type Agent struct {
	cfg    Config
	serf   *serf.Serf
	health Health
	events chan serf.Event
}

func splitHostPort(s string, defPort int) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s, defPort, nil
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("membership: bad port in %q", s)
	}
	return host, p, nil
}

// Start creates the member, joins the cluster if it can (an unreachable
// cluster is retried by Run) and publishes a first health report.
func Start(ctx context.Context, cfg Config, health Health) (*Agent, error) {
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		cfg.NodeName = h
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 10 * time.Second
	}
	ml := memberlist.DefaultLANConfig()
	switch cfg.Profile {
	case "", "lan":
	case "local":
		ml = memberlist.DefaultLocalConfig()
	default:
		return nil, fmt.Errorf("membership: unknown profile %q (want lan or local)", cfg.Profile)
	}
	host, port, err := splitHostPort(cfg.Bind, DefaultPort)
	if err != nil {
		return nil, err
	}
	ml.BindAddr, ml.BindPort = host, port
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise, port)
		if err != nil {
			return nil, err
		}
		ml.AdvertiseAddr, ml.AdvertisePort = ah, ap
	}
	ml.Logger = log.New(logWriter{"memberlist"}, "", 0)

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.MemberlistConfig = ml
	sc.Logger = log.New(logWriter{"serf"}, "", 0)
	if cfg.Profile == "local" {
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
		sc.TombstoneTimeout = time.Minute
	}
	sc.Tags = map[string]string{TagSerial: cfg.Serial}
	events := make(chan serf.Event, 64)
	sc.EventCh = events

	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("membership: start serf on %s: %w", cfg.Bind, err)
	}
	a := &Agent{cfg: cfg, serf: s, health: health, events: events}
	a.publishHealth(ctx)
	a.join()
	return a, nil
}

// Addr is the address other members see this one at.
func (a *Agent) Addr() string {
	m := a.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

func (a *Agent) join() {
	if len(a.cfg.Join) == 0 {
		return
	}
	if n, err := a.serf.Join(a.cfg.Join, true); err != nil {
		slog.Warn("membership: join failed, will retry", "peers", a.cfg.Join, "joined", n, "error", err)
	}
}

func (a *Agent) publishHealth(ctx context.Context) {
	value := CheckFailed
	failed, err := a.health.FailedUnits(ctx)
	if err == nil {
		slices.Sort(failed)
		value = strings.Join(failed, ",")
	}
	cur := a.serf.LocalMember().Tags
	if v, ok := cur[TagFailedUnits]; ok && v == value && cur[TagSerial] == a.cfg.Serial {
		return
	}
	slog.Info("membership: health changed", "failed_units", value, "check_error", err)
	tags := map[string]string{TagSerial: a.cfg.Serial, TagFailedUnits: value}
	if err := a.serf.SetTags(tags); err != nil {
		slog.Warn("membership: publish tags", "error", err)
	}
}

// Run checks and publishes health every CheckInterval and rejoins when this
// member finds itself alone, until ctx ends; then it leaves the cluster
// gracefully so that the others see "left", not "failed".
func (a *Agent) Run(ctx context.Context) error {
	tick := time.NewTicker(a.cfg.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return a.leave()
		case <-a.serf.ShutdownCh():
			return errors.New("membership: serf shut down")
		case ev := <-a.events:
			if me, ok := ev.(serf.MemberEvent); ok {
				for _, m := range me.Members {
					slog.Debug("membership: member event", "event", me.Type.String(), "member", m.Name, "addr", m.Addr.String())
				}
			}
		case <-tick.C:
			a.publishHealth(ctx)
			if a.serf.NumNodes() < 2 {
				a.join()
			}
		}
	}
}

func (a *Agent) leave() error {
	err := a.serf.Leave()
	return errors.Join(err, a.serf.Shutdown())
}

// Close stops the member without leaving, as a crash would.
func (a *Agent) Close() error { return a.serf.Shutdown() }

// Member is a snapshot of one member as the failure detector sees it.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"` // alive, leaving, left, failed
	Tags   map[string]string `json:"tags"`
}

// Members returns every member known, itself included.
func (a *Agent) Members() []Member {
	ms := a.serf.Members()
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{Name: m.Name, Addr: m.Addr.String(), Status: m.Status.String(), Tags: m.Tags}
	}
	return out
}
