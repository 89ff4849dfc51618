package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkInventory runs the inventory scenario of docs/benchmarks.md
// against a real etcd (with fsync) and a real sabakan process, and reports
// each figure as a custom metric (medians of repeated measurements):
//
//   - register 10,000 machines in POSTs of 1,000;
//   - query all 10,000, by rack (100) and by role (5,000), over REST, and
//     all of them over GraphQL (the Kubernetes engine's path);
//   - for comparison, read all 10,000 the way the reference does: one etcd
//     Get per machine (N+1), in the same run;
//   - 1,000 state changes from 10 concurrent clients;
//   - memory of the sabakan process, empty and with 10,000 machines.
//
// One iteration takes a few seconds, so the framework runs it once.
func BenchmarkInventory(b *testing.B) {
	for range b.N {
		inventoryScenario(b)
	}
}

func inventoryScenario(b *testing.B) {
	b.StopTimer()
	e := startEtcd(b)
	s := startSabakan(b, e, "bench")
	s.mustDo(b, "PUT", "/api/v1/config/ipam", []byte(testIPAM), 200)
	emptyRSS, emptyHeap := memory(b, s)

	// Register 10,000 machines, 1,000 per POST (10 racks of 100 each).
	const posts, perPost = 10, 1000
	bodies := make([][]byte, posts)
	for i := range bodies {
		bodies[i] = machines(fmt.Sprintf("p%02d-", i), perPost, i*10, 100)
	}
	b.StartTimer()
	var postTimes []float64
	start := time.Now()
	for _, body := range bodies {
		t0 := time.Now()
		s.mustDo(b, "POST", "/api/v1/machines", body, 201)
		postTimes = append(postTimes, ms(time.Since(t0)))
	}
	b.ReportMetric(ms(time.Since(start)), "register-10k-ms")
	b.ReportMetric(median(postTimes), "post-1000-median-ms")
	b.ReportMetric(slices.Max(postTimes), "post-1000-max-ms")

	// Queries over REST: time to the last byte of the answer.
	get := func(path string, runs int) (float64, int) {
		var times []float64
		size := 0
		for range runs {
			t0 := time.Now()
			resp, err := httpClient.Get(s.url(path))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
			times = append(times, ms(time.Since(t0)))
			size = int(n)
		}
		return median(times), size
	}
	all, size := get("/api/v1/machines", 30)
	b.ReportMetric(all, "query-all-median-ms")
	b.ReportMetric(float64(size)/(1<<20), "query-all-MiB")
	rack, _ := get("/api/v1/machines?rack=5", 50)
	b.ReportMetric(rack, "query-rack-median-ms")
	role, _ := get("/api/v1/machines?role=ss", 30)
	b.ReportMetric(role, "query-role-median-ms")
	gql := `{"query":"{ searchMachines(notHaving: {roles: [\"boot\"], states: [RETIRED]}) { spec { serial labels { name value } rack indexInRack role ipv4 registerDate retireDate } status { state duration } } }"}`
	var gqlTimes []float64
	for range 10 {
		t0 := time.Now()
		data := s.mustDo(b, "POST", "/graphql", []byte(gql), 200)
		gqlTimes = append(gqlTimes, ms(time.Since(t0)))
		if strings.Count(string(data), `"serial"`) != posts*perPost {
			b.Fatalf("GraphQL found %d machines", strings.Count(string(data), `"serial"`))
		}
	}
	b.ReportMetric(median(gqlTimes), "graphql-all-median-ms")

	// The reference's path for comparison: list the serials, then one
	// linearizable Get per machine.
	c := e.rawClient()
	defer c.Close()
	var nTimes []float64
	for range 3 {
		t0 := time.Now()
		keys, err := c.Get(context.Background(), "/sabakan/machines/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			b.Fatal(err)
		}
		for _, kv := range keys.Kvs {
			if _, err := c.Get(context.Background(), string(kv.Key)); err != nil {
				b.Fatal(err)
			}
		}
		nTimes = append(nTimes, ms(time.Since(t0)))
	}
	b.ReportMetric(median(nTimes), "nplus1-all-median-ms")

	// 1,000 state changes from 10 concurrent clients, each on its own
	// machines.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var stateTimes []float64
	t0 := time.Now()
	for client := range 10 {
		wg.Go(func() {
			for i := range 100 {
				serial := fmt.Sprintf("p%02d-%05d", client, i)
				t1 := time.Now()
				s.mustDo(b, "PUT", "/api/v1/state/"+serial, []byte("healthy"), 200)
				mu.Lock()
				stateTimes = append(stateTimes, ms(time.Since(t1)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.ReportMetric(ms(time.Since(t0)), "state-1000x10-ms")
	b.ReportMetric(median(stateTimes), "state-median-ms")
	b.StopTimer()

	rss, heap := memory(b, s)
	b.ReportMetric(emptyRSS, "rss-empty-MiB")
	b.ReportMetric(rss, "rss-10k-MiB")
	b.ReportMetric(emptyHeap, "heap-empty-MiB")
	b.ReportMetric(heap, "heap-10k-MiB")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// memory returns the resident set size of the sabakan process and its Go
// heap in use, in MiB.
func memory(b *testing.B, s *sabakanProc) (rss, heap float64) {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rss = kb / 1024
		}
	}
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			heap = n / (1 << 20)
		}
	}
	return rss, heap
}
