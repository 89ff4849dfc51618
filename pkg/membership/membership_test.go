package membership

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// unitList is a Health whose answer the test sets.
type unitList struct {
	mu     sync.Mutex
	failed []string
	err    error
}

func (u *unitList) FailedUnits(context.Context) ([]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.failed), u.err
}

func (u *unitList) set(failed []string, err error) {
	u.mu.Lock()
	u.failed, u.err = failed, err
	u.mu.Unlock()
}

func startAgent(t *testing.T, name string, join []string, h Health) (*Agent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := Start(ctx, Config{
		NodeName: name, Bind: "127.0.0.1:0", Join: join, Serial: "serial-" + name,
		CheckInterval: 100 * time.Millisecond, Profile: "local",
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		a.Run(ctx)
		close(done)
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(func() { stop(); a.Close() })
	return a, stop
}

// detectionTimeout bounds how long the failure detector may take to settle a
// member's fate. A lost gossip packet (a busy machine) leaves it to the
// prober: with three members and one already dead nobody can confirm a
// suspicion, so lifeguard waits its longest suspicion timeout, 6 × 3 s in
// the local profile, before it declares the member dead (or left, when its
// leave intent arrived).
const detectionTimeout = 60 * time.Second

// waitFor polls cond until it holds or detectionTimeout passes; on a
// timeout it reports what the observer a sees.
func waitFor(t *testing.T, a *Agent, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(detectionTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; members: %+v", what, a.Members())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func member(a *Agent, name string) (Member, bool) {
	for _, m := range a.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func TestMembership(t *testing.T) {
	boot := &unitList{}
	boot0, _ := startAgent(t, "boot-0", nil, boot)
	n1Health := &unitList{}
	_, stopN1 := startAgent(t, "node-1", []string{boot0.Addr()}, n1Health)
	n2, _ := startAgent(t, "node-2", []string{boot0.Addr()}, &unitList{})

	waitFor(t, boot0, "three alive members with health tags", func() bool {
		alive := 0
		for _, m := range boot0.Members() {
			if _, ok := m.Tags[TagFailedUnits]; m.Status == "alive" && ok {
				alive++
			}
		}
		return alive == 3
	})
	if m, _ := member(boot0, "node-1"); m.Tags[TagSerial] != "serial-node-1" || m.Tags[TagFailedUnits] != "" {
		t.Errorf("node-1 tags = %v", m.Tags)
	}

	n1Health.set([]string{"kubelet.service", "bird.service"}, nil)
	waitFor(t, boot0, "failed units to reach the boot server", func() bool {
		m, _ := member(boot0, "node-1")
		return m.Tags[TagFailedUnits] == "bird.service,kubelet.service"
	})
	n1Health.set(nil, errors.New("systemctl: not found"))
	waitFor(t, boot0, "a failed health check to be published", func() bool {
		m, _ := member(boot0, "node-1")
		return m.Tags[TagFailedUnits] == CheckFailed
	})

	n2.Close() // crash: no leave message
	waitFor(t, boot0, "node-2 to be detected as failed", func() bool {
		m, _ := member(boot0, "node-2")
		return m.Status == "failed"
	})

	stopN1() // graceful: leaves
	waitFor(t, boot0, "node-1 to have left", func() bool {
		m, _ := member(boot0, "node-1")
		return m.Status == "left"
	})
}

func TestParseFailedUnits(t *testing.T) {
	out := []byte("bird.service loaded failed failed BIRD routing daemon\nkubelet.service loaded failed failed kubelet\n\n")
	if got := parseFailedUnits(out); !slices.Equal(got, []string{"bird.service", "kubelet.service"}) {
		t.Errorf("parseFailedUnits = %v", got)
	}
	if got := parseFailedUnits(nil); got != nil {
		t.Errorf("no output: %v", got)
	}
}

func TestCommandHealth(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		health  CommandHealth
		want    []string
		wantErr bool
	}{
		{name: "nothing failed", health: CommandHealth{Path: script("ok", "exit 0")}},
		{name: "one line per failed service", health: CommandHealth{Path: script("two", "echo bgp-node-agent; echo; echo '  bird  '")},
			want: []string{"bgp-node-agent", "bird"}},
		{name: "non-zero exit", health: CommandHealth{Path: script("fail", "echo x; exit 3")}, wantErr: true},
		{name: "missing command", health: CommandHealth{Path: filepath.Join(dir, "absent")}, wantErr: true},
		{name: "too slow", health: CommandHealth{Path: script("slow", "exec sleep 5"), Timeout: 100 * time.Millisecond}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.health.FailedUnits(context.Background())
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("FailedUnits = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
