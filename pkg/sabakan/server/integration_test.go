package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// invariants reads etcd directly and checks what must hold whatever
// happened: no index in rack and no address used twice, every machine owns
// its slot key and every slot key has its machine. It returns the machine
// records by serial.
func invariants(t *testing.T, e *etcdProc) map[string]string {
	t.Helper()
	c := e.rawClient()
	defer c.Close()
	ctx := context.Background()
	resp, err := c.Txn(ctx).Then(
		clientv3.OpGet("/sabakan/machines/", clientv3.WithPrefix()),
		clientv3.OpGet("/sabakan/node-indices/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	slots := map[string]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		slots[strings.TrimPrefix(string(kv.Key), "/sabakan/node-indices/")] = string(kv.Value)
	}
	records := map[string]string{}
	addrs := map[string]string{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var m sabakan.Machine
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			t.Fatal(err)
		}
		s := m.Spec
		records[s.Serial] = string(kv.Value)
		slot := fmt.Sprintf("%d/%d", s.Rack, s.IndexInRack)
		if slots[slot] != s.Serial {
			t.Errorf("slot %s holds %q, not its machine %s", slot, slots[slot], s.Serial)
		}
		delete(slots, slot)
		for _, a := range append(s.IPv4, s.BMC.IPv4) {
			if other, dup := addrs[a]; dup {
				t.Errorf("address %s is used by %s and %s", a, other, s.Serial)
			}
			addrs[a] = s.Serial
		}
	}
	for slot, serial := range slots {
		t.Errorf("slot %s (%s) has no machine", slot, serial)
	}
	return records
}

// TestThreeServersConcurrentRegistration registers machines through three
// sabakan processes at once, into the same racks, and checks that nothing is
// lost or doubly allocated and that all servers agree.
func TestThreeServersConcurrentRegistration(t *testing.T) {
	e := startEtcd(t)
	servers := []*sabakanProc{startSabakan(t, e, "a"), startSabakan(t, e, "b"), startSabakan(t, e, "c")}
	servers[0].mustDo(t, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)

	const perPost, posts = 300, 2 // per server; 1,800 machines over 20 racks
	var wg sync.WaitGroup
	for i, s := range servers {
		for p := range posts {
			wg.Go(func() {
				body := machines(fmt.Sprintf("%s%d-", s.name, p), perPost, 0, 15)
				if st, data := s.do("POST", "/api/v1/machines", body); st != 201 {
					t.Errorf("POST %d to server %d: %d %s", p, i, st, tail(string(data), 300))
				}
			})
		}
	}
	// The same serial registered through two servers at once: one wins.
	dup := make(chan int, 2)
	for _, s := range servers[1:] {
		wg.Go(func() {
			st, _ := s.do("POST", "/api/v1/machines", machines("dup-", 1, 25, 1))
			dup <- st
		})
	}
	wg.Wait()

	if a, b := <-dup, <-dup; a+b != 201+409 {
		t.Errorf("racing registrations of one serial answered %d and %d, want 201 and 409", a, b)
	}
	records := invariants(t, e)
	want := len(servers)*posts*perPost + 1
	if len(records) != want {
		t.Errorf("%d machines in etcd, want %d", len(records), want)
	}
	var counts []int
	for _, s := range servers {
		counts = append(counts, s.count(t, ""))
	}
	if counts[0] != counts[1] || counts[1] != counts[2] || counts[0] != len(records) {
		t.Errorf("servers see %v machines, etcd holds %d", counts, len(records))
	}
	_, metrics := servers[1].doURL("http://" + servers[1].metrics + "/metrics")
	if want := fmt.Sprintf(`sabakan_machines{state="uninitialized"} %d`, want); !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q", want)
	}
	// The same query gives byte-identical answers, durations aside.
	var answers []string
	for _, s := range servers {
		_, data := s.get("/api/v1/machines?rack=3&role=cs")
		var ms []sabakan.Machine
		json.Unmarshal(data, &ms)
		var serials []string
		for _, m := range ms {
			serials = append(serials, fmt.Sprintf("%s@%d:%s", m.Spec.Serial, m.Spec.IndexInRack, m.Spec.IPv4[0]))
		}
		answers = append(answers, strings.Join(serials, " "))
	}
	if answers[0] == "" || answers[0] != answers[1] || answers[1] != answers[2] {
		t.Errorf("servers disagree on rack 3:\n%s", strings.Join(answers, "\n"))
	}
}

// TestKilledDuringRegistration kills a sabakan with SIGKILL while it writes
// a large registration and checks that readers never see part of it, that
// etcd stays consistent, and that another server removes the leftovers.
func TestKilledDuringRegistration(t *testing.T) {
	e := startEtcd(t)
	// A registration lease shorter than the default lets the survivor roll
	// the killed registration back sooner (any server does it once the
	// lease is gone, elected or not), yet long enough for the survivor's own
	// registration on a loaded CI machine; the janitor election keeps its
	// default 60 s, which the rollback must not wait for.
	fast := []string{"-registration-ttl", "10s"}
	victim := startSabakan(t, e, "victim", fast...)
	survivor := startSabakan(t, e, "survivor", fast...)
	victim.mustDo(t, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)
	survivor.mustDo(t, "POST", "/api/v1/machines", machines("keep-", 10, 0, 10), 201)

	// Kill the victim as soon as its first machine reaches etcd.
	c := e.rawClient()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 5000
	killMidRegistration(t, c, victim, "big-", machines("big-", n, 1, 100), n)

	// Readers see all or nothing of it, while it is pending and after.
	seen := survivor.count(t, "?serial="+bigSerials(n))
	if seen != 0 && seen != n {
		t.Fatalf("the survivor sees %d of %d machines of the killed registration", seen, n)
	}
	invariants(t, e)
	deadline := time.Now().Add(60 * time.Second)
	for {
		records := invariants(t, e)
		// The killed registration's record goes with its lease; committed
		// records (the survivor's own) are the elected janitor's to tidy,
		// which is not what this test is about.
		regs, err := c.Get(ctx, "/sabakan/registrations/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, kv := range regs.Kvs {
			if strings.Contains(string(kv.Value), `"pending"`) {
				pending++
			}
		}
		visible := survivor.count(t, "")
		if visible != 10 && visible != 10+n {
			t.Fatalf("the survivor sees %d machines, want 10 or %d", visible, 10+n)
		}
		if len(records) == visible && pending == 0 {
			t.Logf("recovered: %d machines remain", visible)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leftovers not removed: %d machine keys, %d visible, %d pending registration records", len(records), visible, pending)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The survivor keeps working.
	survivor.mustDo(t, "POST", "/api/v1/machines", machines("after-", 50, 1, 100), 201)
	invariants(t, e)
}

// killMidRegistration POSTs batch (n machines whose serials start with
// prefix) to srv, kills srv with SIGKILL as soon as the first machine
// reaches etcd, checks that the POST failed and left part of the batch
// behind, and returns when srv was killed.
func killMidRegistration(t *testing.T, c *clientv3.Client, srv *sabakanProc, prefix string, batch []byte, n int) time.Time {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, _ := c.Get(ctx, "x")
	wch := c.Watch(ctx, "/sabakan/machines/"+prefix, clientv3.WithPrefix(), clientv3.WithRev(rev.Header.Revision+1))
	posted := make(chan int, 1)
	go func() {
		st, _ := srv.do("POST", "/api/v1/machines", batch)
		posted <- st
	}()
	select {
	case <-wch:
	case st := <-posted:
		t.Fatalf("the POST finished (%d) before any machine was seen", st)
	case <-time.After(30 * time.Second):
		t.Fatal("no machine of the POST reached etcd")
	}
	srv.kill(syscall.SIGKILL)
	killed := time.Now()
	if st := <-posted; st == 201 {
		t.Fatal("the POST to the killed server succeeded")
	}
	left, err := c.Get(ctx, "/sabakan/machines/"+prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if left.Count == 0 {
		t.Fatal("the kill left no machine of the registration behind: nothing was tested")
	}
	t.Logf("the killed registration left %d of %d machine keys", left.Count, n)
	return killed
}

// bigSerials is a query value selecting the first and last machines of the
// killed registration.
func bigSerials(n int) string {
	return fmt.Sprintf("big-%05d,big-%05d", 0, n-1)
}

// TestEtcdOutage stops etcd under a running sabakan and starts it again:
// requests fail with 503 and a message naming etcd, /health turns unhealthy,
// and everything recovers without restarting sabakan.
func TestEtcdOutage(t *testing.T) {
	e := startEtcd(t)
	s := startSabakan(t, e, "s", "-etcd-request-timeout", "1s")
	s.mustDo(t, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)
	s.mustDo(t, "POST", "/api/v1/machines", machines("m-", 5, 0, 5), 201)

	e.stop()
	if st, data := s.get("/health"); st != 500 || !strings.Contains(string(data), "unhealthy") {
		t.Errorf("/health during the outage: %d %s", st, data)
	}
	if st, data := s.get("/api/v1/machines"); st != 503 || !strings.Contains(string(data), "etcd") {
		t.Errorf("GET machines during the outage: %d %s", st, data)
	}
	if st, data := s.do("PUT", "/api/v1/state/m-00000", []byte("healthy")); st != 503 || !strings.Contains(string(data), "etcd") {
		t.Errorf("PUT state during the outage: %d %s", st, data)
	}
	if st, data := s.do("POST", "/api/v1/machines", machines("lost-", 100, 1, 100)); st != 503 {
		t.Errorf("POST machines during the outage: %d %s", st, data)
	}

	e.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := s.get("/health"); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sabakan did not become healthy after etcd returned")
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.mustDo(t, "PUT", "/api/v1/state/m-00000", []byte("healthy"), 200)
	if st, data := s.get("/api/v1/state/m-00000"); st != 200 || string(data) != "healthy" {
		t.Errorf("state after recovery: %d %s", st, data)
	}
	// The index follows writes again, also those of other servers.
	other := startSabakan(t, e, "other")
	other.mustDo(t, "POST", "/api/v1/machines", machines("new-", 20, 1, 100), 201)
	if n := s.count(t, ""); n != 25 {
		t.Errorf("after recovery the first server sees %d machines, want 25", n)
	}
	if n := s.count(t, "?serial=lost-00000"); n != 0 {
		t.Errorf("a machine of the POST that failed during the outage is visible")
	}
	invariants(t, e)
}
