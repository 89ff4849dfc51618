package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRestartAfterKilledRegistration: the only sabakan is killed with
// SIGKILL in the middle of a registration and started again. Its janitor
// election is blocked by the dead process's session for the whole
// metrics-leader-election-ttl (60 s), yet POSTing the same batch again
// succeeds within registration-ttl of the kill (plus slack), and no key of
// the killed registration is left.
func TestRestartAfterKilledRegistration(t *testing.T) {
	// A registration must finish within its lease: 3,000 machines take
	// seconds on a loaded CI machine (load 50-100, -race).
	const ttl = 10 * time.Second
	e := startEtcd(t)
	first := startSabakan(t, e, "first", "-registration-ttl", ttl.String())
	first.mustDo(t, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)

	c := e.rawClient()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 3000
	batch := machines("crash-", n, 1, 100)
	killed := killMidRegistration(t, c, first, "crash-", batch, n)

	again := startSabakan(t, e, "again", "-registration-ttl", ttl.String())
	// The batch is blocked until the attempt that succeeds starts. Slack:
	// the restart, etcd looking for expired leases every 0.5 s, attempts
	// 0.25 s apart, all on a machine that may be loaded. Before the fix the
	// batch stayed blocked for the janitor election's 60 s, far beyond.
	bound := ttl + 15*time.Second
	var st int
	var data []byte
	var attempt time.Time
	for {
		attempt = time.Now()
		st, data = again.do("POST", "/api/v1/machines", batch)
		if st == 201 || time.Since(killed) > bound+10*time.Second {
			break
		}
		if st != 409 {
			t.Fatalf("POST after the restart: %d %s", st, tail(string(data), 300))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if st != 201 {
		t.Fatalf("POSTing the batch again still answers %d %s %s after the kill; registration-ttl is %s", st, tail(string(data), 200), time.Since(killed).Round(time.Millisecond), ttl)
	}
	blocked := attempt.Sub(killed)
	t.Logf("the batch was blocked for %s after the kill (registration-ttl %s); registered again after %s",
		blocked.Round(time.Millisecond), ttl, time.Since(killed).Round(time.Millisecond))
	if blocked > bound {
		t.Errorf("the batch was blocked for %s after the kill, want at most registration-ttl %s and slack", blocked.Round(time.Millisecond), ttl)
	}

	records := invariants(t, e)
	if len(records) != n || again.count(t, "") != n {
		t.Errorf("%d machine keys in etcd, %d visible, want %d of each", len(records), again.count(t, ""), n)
	}
	regs, err := c.Get(ctx, "/sabakan/registrations/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range regs.Kvs {
		if strings.Contains(string(kv.Value), `"pending"`) {
			t.Errorf("a pending registration is left: %s %s", kv.Key, kv.Value)
		}
	}
	if _, metrics := again.doURL("http://" + again.metrics + "/metrics"); !strings.Contains(string(metrics), "sabakan_machines_hidden 0") {
		t.Errorf("hidden machines remain: %s", grepLines(string(metrics), "sabakan_machines_hidden"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
