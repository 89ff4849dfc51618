package vdc

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Run runs argv inside a host and returns its combined output.
func (in *Instance) Run(ctx context.Context, host string, argv ...string) (string, error) {
	full, err := in.ExecArgs(host, argv)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vdc: %s: %s: %w: %s", host, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// SystemState is what `systemctl is-system-running` says inside an nspawn
// node ("running", "degraded", "starting", …), or "down".
func (in *Instance) SystemState(ctx context.Context, host string) string {
	argv, err := in.ExecArgs(host, []string{"systemctl", "is-system-running"})
	if err != nil {
		return "down"
	}
	out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "down"
	}
	return s
}

// Booted reports whether systemd in the node finished booting.
func Booted(state string) bool { return state == "running" || state == "degraded" }

// WaitBooted waits until every nspawn node has finished booting and
// returns how long each took from the call.
func (in *Instance) WaitBooted(ctx context.Context) (map[string]time.Duration, error) {
	start := time.Now()
	took := map[string]time.Duration{}
	for {
		pending := []string{}
		for _, n := range in.Cluster.NspawnNodes {
			if _, ok := took[n.Name]; ok {
				continue
			}
			if Booted(in.SystemState(ctx, n.Name)) {
				took[n.Name] = time.Since(start)
			} else {
				pending = append(pending, n.Name)
			}
		}
		if len(pending) == 0 {
			return took, nil
		}
		select {
		case <-ctx.Done():
			return took, fmt.Errorf("vdc: not booted: %s: %w", strings.Join(pending, ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitBGP waits until every BGP session of every router is established
// (dynamic node sessions included, once they exist).
func (in *Instance) WaitBGP(ctx context.Context) ([]BGPSession, error) {
	for {
		sessions, err := in.BGPSessions(ctx)
		down := []string{}
		if err == nil {
			for _, s := range sessions {
				if !s.Established() {
					down = append(down, s.Router+"/"+s.Name+" "+s.Info)
				}
			}
			if len(down) == 0 {
				return sessions, nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return sessions, err
			}
			return sessions, fmt.Errorf("vdc: BGP sessions not established: %s: %w", strings.Join(down, ", "), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
