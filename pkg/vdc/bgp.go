package vdc

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// BGPSession is one BGP protocol of a router as BIRD reports it.
type BGPSession struct {
	Router string `json:"router"`
	Name   string `json:"name"`
	State  string `json:"state"` // up, start, …
	Info   string `json:"info"`  // Established, Active, Connect, …
}

// Established reports whether the session is up.
func (s BGPSession) Established() bool { return s.Info == "Established" }

// birdSocket finds a router's BIRD control socket from its bird app's
// command line ("-s PATH").
func (in *Instance) birdSocket(router string) (string, bool) {
	for _, ns := range in.Cluster.Namespaces {
		if ns.Name != router {
			continue
		}
		for _, a := range ns.Apps {
			if !strings.HasSuffix(a.Command[0], "bird") {
				continue
			}
			for i, arg := range a.Command {
				if arg == "-s" && i+1 < len(a.Command) {
					return a.Command[i+1], true
				}
			}
			return "/run/bird/bird.ctl", true
		}
	}
	return "", false
}

// Birdc runs birdc with args against a router's BIRD and returns its
// output.
func (in *Instance) Birdc(ctx context.Context, router string, args ...string) (string, error) {
	sock, ok := in.birdSocket(router)
	if !ok {
		return "", fmt.Errorf("vdc: %s runs no bird app: %w", router, ErrNotFound)
	}
	argv, err := in.ExecArgs(router, append([]string{"birdc", "-s", sock}, args...))
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vdc: birdc on %s: %w: %s", router, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// BGPSessions lists the BGP protocols of every router running BIRD.
// Dynamic sessions that BIRD spawned for nodes appear by their own names.
func (in *Instance) BGPSessions(ctx context.Context) ([]BGPSession, error) {
	var out []BGPSession
	for _, ns := range in.Cluster.Namespaces {
		if _, ok := in.birdSocket(ns.Name); !ok {
			continue
		}
		text, err := in.Birdc(ctx, ns.Name, "show", "protocols")
		if err != nil {
			return nil, err
		}
		out = append(out, ParseProtocols(ns.Name, text)...)
	}
	return out, nil
}

// ParseProtocols reads the BGP lines of `birdc show protocols`:
//
//	Name       Proto      Table      State  Since         Info
//	spine1     BGP        ---        up     10:00:00.000  Established
//
// Passive templates that only listen (BIRD's dynamic BGP) are left out.
func ParseProtocols(router, text string) []BGPSession {
	var out []BGPSession
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1] != "BGP" {
			continue
		}
		info := ""
		if len(f) >= 6 {
			info = strings.Join(f[5:], " ")
		}
		// A dynamic-BGP listener shows "start … Passive"; it is no session.
		if f[3] == "start" && info == "Passive" {
			continue
		}
		out = append(out, BGPSession{Router: router, Name: f[0], State: f[3], Info: info})
	}
	return out
}
