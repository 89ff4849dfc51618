//go:build dctest

package dctest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestPower (in this file so that it runs after TestUpgrade: go test runs
// files in name order, and its power actions must not disturb the upgrade
// suite's cluster) is out-of-band control through the machines' virtual BMCs
// (Redfish over HTTPS on the BMC network), as an operator and the repair
// loop use it from the boot servers:
//
//   - the credentials are stored once; neco power status reads every
//     machine's power state;
//   - neco power stop of a worker: sabakan marks it unreachable; neco power
//     start: healthy again; both in sabakan's audit log;
//   - a hung machine (its health agent stopped) is power-cycled once by
//     the repair loop and comes back healthy;
//   - within the rate limit's window a second hung machine is held, not
//     cycled;
//   - a whole rack's workers powered off: held as a rack-wide failure.
func TestPower(t *testing.T) {
	d := necoDC(t)
	ctx := context.Background()
	h := hosts{t, d.In, 2 * time.Minute}
	boot0 := d.BootServers()[0]

	h.must(boot0, "neco", "bmc", "set-credentials", "--username", d.BMC.Username, "--password-file", necodc.BMCPasswordFile)
	if out := h.must(boot0, "neco", "bmc", "show-credentials"); strings.Contains(out, d.BMC.Password) {
		t.Fatalf("neco bmc show-credentials printed the password:\n%s", out)
	}
	// The Kubernetes engine, if it runs, must not replace control planes
	// that this suite powers off for a while.
	if _, _, err := d.ClusterNodes(ctx); err == nil {
		h.must(boot0, "ckecli", "constraints", "set", "wait-seconds-to-replace-control-plane", "3600")
		defer h.run(boot0, "ckecli", "constraints", "set", "wait-seconds-to-replace-control-plane", "20")
	}

	// Earlier suites may have retired or removed machines: the suite uses
	// those that sabakan has healthy.
	states, err := d.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("status", func(t *testing.T) {
		ps := powerStatus(t, d, h)
		for name, hp := range d.Plan.Hosts {
			if states[name] == sabakan.StateHealthy && ps[hp.Serial] != "On" {
				t.Errorf("%s (%s, healthy): power %q, want On", name, hp.Serial, ps[hp.Serial])
			}
		}
	})

	// Healthy workers, those that are not control planes first.
	cps, _, _ := d.ClusterNodes(ctx)
	var workers, cpWorkers []string
	for _, w := range d.Workers() {
		switch {
		case states[w] != sabakan.StateHealthy:
		case slices.Contains(cps, d.Plan.Hosts[w].Node0.String()):
			cpWorkers = append(cpWorkers, w)
		default:
			workers = append(workers, w)
		}
	}
	workers = append(workers, cpWorkers...)
	if len(workers) < 2 {
		t.Fatalf("want two healthy workers in sabakan, have %v (states %v)", workers, states)
	}
	t.Run("stop and start", func(t *testing.T) {
		victim := workers[0]
		serial := d.Plan.Hosts[victim].Serial
		start := time.Now()
		h.must(boot0, "neco", "power", "stop", "--force", serial)
		defer h.run(boot0, "neco", "power", "start", serial) // on a failure below
		stopped := time.Since(start)
		if ps := powerStatus(t, d, h); ps[serial] != "Off" {
			t.Errorf("%s after neco power stop: power %q, want Off", victim, ps[serial])
		}
		if err := d.WaitStates(ctx, sabakan.StateUnreachable, 3*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		unreachable := time.Since(start)
		start = time.Now()
		h.must(boot0, "neco", "power", "start", serial)
		started := time.Since(start)
		if err := d.WaitStates(ctx, sabakan.StateHealthy, 5*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		healthy := time.Since(start)
		logs := powerLogs(t, d, h, serial)
		for _, a := range []string{"power-forceoff", "power-on"} {
			if !slices.Contains(logs, a) {
				t.Errorf("sabakan's audit log of %s has %v, want %s", serial, logs, a)
			}
		}
		t.Logf("%s: neco power stop --force took %s, unreachable after %s; neco power start took %s, healthy after %s",
			victim, stopped.Round(10*time.Millisecond), unreachable.Round(time.Second), started.Round(10*time.Millisecond), healthy.Round(time.Second))
		report(t, map[string]any{"power_stop_s": stopped.Seconds(), "power_start_s": started.Seconds(),
			"power_unreachable_s": unreachable.Seconds(), "power_healthy_s": healthy.Seconds()})
	})

	// The repair loop: quick settings for the test, the defaults after.
	for k, v := range map[string]string{"repair-after": "20s", "repair-limit": "1", "repair-window": "10m", "repair-wait": "5m"} {
		h.must(boot0, "neco", "config", "set", k, v)
		defer h.run(boot0, "neco", "config", "unset", k)
	}
	// Two hung machines one after the other (the first healthy again before
	// the second hangs, so no rack ever has two failing).
	hung := workers[:2]

	t.Run("a hung machine is power-cycled", func(t *testing.T) {
		victim := hung[0]
		serial := d.Plan.Hosts[victim].Serial
		start := time.Now()
		h.must(victim, "systemctl", "stop", "node-health-agent.service")
		defer h.run(victim, "systemctl", "start", "node-health-agent.service") // on a failure below
		if err := d.WaitStates(ctx, sabakan.StateUnreachable, 3*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		unreachable := time.Since(start)
		// Cycled: its boot ID changes; then healthy again.
		if err := waitAudit(ctx, d, h, serial, "power-cycle", 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		cycled := time.Since(start)
		if err := d.WaitStates(ctx, sabakan.StateHealthy, 6*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		healthy := time.Since(start)
		if err := waitAudit(ctx, d, h, serial, "repair-recovered", 2*time.Minute); err != nil {
			t.Error(err)
		}
		if n := count(powerLogs(t, d, h, serial), "power-cycle"); n != 1 {
			t.Errorf("%s was power-cycled %d times, want once", victim, n)
		}
		t.Logf("%s hung (health agent stopped): unreachable after %s, power-cycled by the repair loop after %s, healthy after %s",
			victim, unreachable.Round(time.Second), cycled.Round(time.Second), healthy.Round(time.Second))
		report(t, map[string]any{"repair_unreachable_s": unreachable.Seconds(), "repair_cycled_s": cycled.Seconds(),
			"repair_healthy_s": healthy.Seconds()})
	})

	t.Run("the rate limit holds a second hung machine", func(t *testing.T) {
		victim := hung[1]
		serial := d.Plan.Hosts[victim].Serial
		h.must(victim, "systemctl", "stop", "node-health-agent.service")
		defer h.run(victim, "systemctl", "start", "node-health-agent.service")
		if err := d.WaitStates(ctx, sabakan.StateUnreachable, 3*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
		// repair-after and two rounds of the loop (10 s each).
		time.Sleep(50 * time.Second)
		if n := count(powerLogs(t, d, h, serial), "power-cycle"); n != 0 {
			t.Errorf("%s was power-cycled %d times within the rate limit's window", victim, n)
		}
		if s, err := d.States(ctx); err != nil || s[victim] != sabakan.StateUnreachable {
			t.Errorf("%s: state %q (%v), want still unreachable", victim, s[victim], err)
		}
		h.must(victim, "systemctl", "start", "node-health-agent.service")
		if err := d.WaitStates(ctx, sabakan.StateHealthy, 3*time.Minute, victim); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a rack-wide failure is held", func(t *testing.T) {
		// A fresh window: the limit alone would not hold this rack.
		h.must(boot0, "neco", "config", "set", "repair-limit", "10")
		// A rack with two healthy workers.
		byRack := map[uint][]string{}
		for _, w := range workers {
			byRack[d.Plan.Hosts[w].Rack] = append(byRack[d.Plan.Hosts[w].Rack], w)
		}
		var down, serials []string
		for _, ws := range byRack {
			if len(ws) >= 2 {
				down = ws[:2]
				break
			}
		}
		if down == nil {
			t.Skipf("no rack has two healthy workers left (healthy workers %v): earlier suites retired or removed them", workers)
		}
		for _, w := range down {
			serials = append(serials, d.Plan.Hosts[w].Serial)
		}
		// Cycles before this subtest (a machine of the rack may have been
		// the hung one) do not count.
		before := map[string]int{}
		for _, s := range serials {
			before[s] = count(powerLogs(t, d, h, s), "power-cycle")
		}
		h.must(boot0, append([]string{"neco", "power", "stop", "--force"}, serials...)...)
		defer h.run(boot0, append([]string{"neco", "power", "start"}, serials...)...)
		if err := d.WaitStates(ctx, sabakan.StateUnreachable, 3*time.Minute, down...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Second)
		ps := powerStatus(t, d, h)
		for _, s := range serials {
			if ps[s] != "Off" {
				t.Errorf("%s: power %q after a rack-wide failure, want Off (left for an operator)", s, ps[s])
			}
			if n := count(powerLogs(t, d, h, s), "power-cycle") - before[s]; n != 0 {
				t.Errorf("%s was power-cycled %d times in a rack-wide failure", s, n)
			}
		}
		h.must(boot0, append([]string{"neco", "power", "start"}, serials...)...)
		if err := d.WaitStates(ctx, sabakan.StateHealthy, 6*time.Minute, down...); err != nil {
			t.Fatal(err)
		}
	})
}

// powerStatus maps serials to power states from neco power status.
func powerStatus(t *testing.T, d *necodc.DC, h hosts) map[string]string {
	t.Helper()
	out := h.must(d.BootServers()[0], "neco", "power", "status", "-o", "json")
	var list []struct {
		Serial string `json:"serial"`
		Power  string `json:"power"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("neco power status -o json: %v\n%s", err, out)
	}
	ps := map[string]string{}
	for _, e := range list {
		ps[e.Serial] = e.Power
		if e.Error != "" {
			ps[e.Serial] = "error: " + e.Error
		}
	}
	return ps
}

// powerLogs lists the actions of today's power entries of a machine in
// sabakan's audit log.
func powerLogs(t *testing.T, d *necodc.DC, _ hosts, serial string) []string {
	t.Helper()
	actions, err := auditActions(context.Background(), d, serial)
	if err != nil {
		t.Fatal(err)
	}
	return actions
}

func auditActions(ctx context.Context, d *necodc.DC, serial string) ([]string, error) {
	today := time.Now().UTC()
	out, err := d.In.Run(ctx, d.BootServers()[0], "sabactl", "logs", "--json",
		today.Format("20060102"), today.AddDate(0, 0, 1).Format("20060102"))
	if err != nil {
		return nil, err
	}
	var actions []string
	for _, line := range strings.Split(out, "\n") {
		var e sabakan.AuditEntry
		if json.Unmarshal([]byte(line), &e) == nil && e.Category == sabakan.AuditPower && e.Instance == serial {
			actions = append(actions, e.Action)
		}
	}
	return actions, nil
}

// waitAudit waits for a power entry with action for serial.
func waitAudit(ctx context.Context, d *necodc.DC, _ hosts, serial, action string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last []string
	if err := proc.WaitFor(ctx, 2*time.Second, func() bool {
		a, err := auditActions(ctx, d, serial)
		last = a
		return err == nil && slices.Contains(a, action)
	}); err != nil {
		return fmt.Errorf("no %s of %s in sabakan's audit log after %s (power entries: %v)", action, serial, limit, last)
	}
	return nil
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
