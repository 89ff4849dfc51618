package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

// BenchmarkRelease measures the time from a release appearing on (the
// fake) GitHub to all three workers completing it, with a 1 s GitHub poll
// interval, broken down into phases: detect (release → request written),
// install (request → every worker installed the package with dpkg, handed
// over and reached the first barrier), and each step (barrier to barrier).
// "watch" loops wake on etcd events; "poll" loops re-read etcd every
// second instead, for comparison. Run with -benchtime=Nx: one iteration is
// one release.
func BenchmarkRelease(b *testing.B) {
	for _, mode := range []struct {
		name string
		poll time.Duration
	}{{"watch", 0}, {"poll-1s", time.Second}} {
		b.Run(mode.name, func(b *testing.B) { benchRelease(b, mode.poll) })
	}
}

func benchRelease(b *testing.B, poll time.Duration) {
	c := newCluster(b, nil)
	c.poll = poll
	ctx := context.Background()
	versions := make([]string, b.N+1)
	for i := range versions {
		versions[i] = fmt.Sprintf("2025.04.01-%d", i+1)
		buildDeb(b, versions[i]) // outside the timed part
	}
	publish(b, c.gh, versions[0])
	for _, lrn := range []int{0, 1, 2} {
		c.addServer(lrn, versions[0])
	}
	c.startUpdater("u")
	c.waitFor("first", 60*time.Second, completed(versions[0], 0, 1, 2))

	type event struct {
		at  time.Time
		key string
		val []byte
	}
	events := make(chan event, 10000)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range etcdtest.NewClient(b, c.prefix).Watch(wctx, "status/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
		if resp.Created {
			break
		}
	}
	go func() {
		for resp := range etcdtest.NewClient(b, c.prefix).Watch(wctx, "status/", clientv3.WithPrefix()) {
			now := time.Now()
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					events <- event{now, string(ev.Kv.Key), ev.Kv.Value}
				}
			}
		}
	}()

	phases := map[string][]float64{}
	var order []string
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		v := versions[i]
		start := time.Now()
		publish(b, c.gh, v)
		c.waitFor(v, 60*time.Second, completed(v, 0, 1, 2))
		total := time.Since(start)
		b.StopTimer()
		// Replay the status writes of this release.
		var reqAt time.Time
		var reqID int64
		lastAt := map[string]time.Time{} // phase boundary → when the last server crossed it
		seen := map[string]map[string]bool{}
	drain:
		for {
			select {
			case ev := <-events:
				if ev.key == storage.StatusCurrent {
					var r neco.UpdateRequest
					jsonUnmarshal(ev.val, &r)
					if r.Version == v && reqAt.IsZero() {
						reqAt, reqID = ev.at, r.ID
					}
					continue
				}
				var st neco.UpdateStatus
				jsonUnmarshal(ev.val, &st)
				if st.RequestID != reqID || reqID == 0 {
					continue
				}
				mark := fmt.Sprintf("%d", st.Step)
				if st.Cond == neco.CondCompleted {
					mark = "done"
				}
				if seen[mark] == nil {
					seen[mark] = map[string]bool{}
				}
				seen[mark][ev.key] = true
				lastAt[mark] = ev.at
			default:
				break drain
			}
		}
		steps := []string{"sabakan-config", "sabakan-contents", "final-barrier"}
		add := func(name string, d time.Duration) {
			if !slices.Contains(order, name) {
				order = append(order, name)
			}
			phases[name] = append(phases[name], d.Seconds())
		}
		add("detect", reqAt.Sub(start))
		add("install", lastAt["1"].Sub(reqAt))
		for k, s := range steps {
			from, to := fmt.Sprint(k+1), fmt.Sprint(k+2)
			if k == len(steps)-1 {
				to = "done"
			}
			add("step-"+s, lastAt[to].Sub(lastAt[from]))
		}
		add("total", total)
		b.StartTimer()
	}
	b.StopTimer()
	var report []string
	for _, name := range order {
		m := median(phases[name])
		b.ReportMetric(m, name+"-s")
		report = append(report, fmt.Sprintf("%s %.3fs", name, m))
	}
	b.Logf("medians over %d releases: %s", b.N, strings.Join(report, ", "))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
