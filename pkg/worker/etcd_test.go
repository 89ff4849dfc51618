package worker_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/worker"
)

// etcdProc is a real etcd process standing for one boot server's etcd
// service: the LocalEtcd of the tests.
type etcdProc struct {
	t                  *testing.T
	bin, dir, name     string
	clientURL, peerURL string
	daemonProc
	args     []string
	restarts []span
}

type span struct{ start, end time.Time }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newEtcdProc(t *testing.T, bin string, lrn int) *etcdProc {
	return &etcdProc{t: t, bin: bin, dir: t.TempDir(), name: worker.MemberName(lrn),
		clientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), peerURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
}

func (p *etcdProc) start(initial map[string]string, state string) error {
	var ic []string
	for _, n := range slices.Sorted(maps.Keys(initial)) {
		ic = append(ic, n+"="+initial[n])
	}
	p.args = []string{"--name", p.name, "--data-dir", filepath.Join(p.dir, "data"),
		"--listen-client-urls", p.clientURL, "--advertise-client-urls", p.clientURL,
		"--listen-peer-urls", p.peerURL, "--initial-advertise-peer-urls", p.peerURL,
		"--initial-cluster", strings.Join(ic, ","), "--initial-cluster-state", state, "--initial-cluster-token", "cdtest",
		"--heartbeat-interval", "50", "--election-timeout", "500", "--unsafe-no-fsync", "--log-level", "error"}
	return p.run()
}

func (p *etcdProc) run() error { return p.launch(p.bin, p.dir, p.args...) }

func (p *etcdProc) stop() { p.stopWithin(10 * time.Second) }

func (p *etcdProc) maintenance(t *testing.T) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{p.clientURL}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (p *etcdProc) Join(ctx context.Context, initial map[string]string) error {
	if err := p.start(initial, "existing"); err != nil {
		return err
	}
	return worker.WaitMember(ctx, p.maintenance(p.t).Maintenance, p.clientURL)
}

func (p *etcdProc) Restart(ctx context.Context) error {
	s := span{start: time.Now()}
	p.stop()
	if err := p.run(); err != nil {
		return err
	}
	err := worker.WaitMember(ctx, p.maintenance(p.t).Maintenance, p.clientURL)
	s.end = time.Now()
	p.mu.Lock()
	p.restarts = append(p.restarts, s)
	p.mu.Unlock()
	return err
}

// TestEtcdStep runs the etcd membership step against a cluster of real
// etcd processes that also holds the CD state: staggered restarts for a
// new version, idempotence, a joining boot server, a departed one.
func TestEtcdStep(t *testing.T) {
	bin := testutil.RequireCommands(t, "etcd")[0]
	ctx := context.Background()
	procs := map[int]*etcdProc{}
	initial := map[string]string{}
	for _, lrn := range []int{0, 1, 2, 3} {
		procs[lrn] = newEtcdProc(t, bin, lrn)
	}
	for _, lrn := range []int{0, 1, 2} {
		initial[procs[lrn].name] = procs[lrn].peerURL
	}
	for _, lrn := range []int{0, 1, 2} {
		if err := procs[lrn].start(initial, "new"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(procs[lrn].stop)
	}
	t.Cleanup(procs[3].stop)

	endpoints := []string{procs[0].clientURL, procs[1].clientURL, procs[2].clientURL}
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cluster := client.Cluster
	if err := worker.WaitMember(ctx, client.Maintenance, endpoints[0]); err != nil {
		t.Fatal(err)
	}
	st := storage.New(client)
	etcdutil.Scope(client, storage.DefaultPrefix, 10*time.Second)
	peerURL := func(lrn int) string { return procs[lrn].peerURL }

	runAll := func(t *testing.T, version string, servers ...int) {
		t.Helper()
		req := &neco.UpdateRequest{ID: 1, Version: version, Servers: servers}
		var wg sync.WaitGroup
		for i, lrn := range servers {
			step := worker.EtcdStep(cluster, procs[lrn], peerURL)
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				// As the worker runs it: again while etcd is unavailable,
				// here while another member restarts.
				err := step.RunRetrying(sctx, &worker.StepEnv{LRN: lrn, Request: req, Index: i, Storage: st})
				if err != nil {
					t.Errorf("etcd step on %d: %v", lrn, err)
				}
			})
		}
		wg.Wait()
	}
	members := func() []string {
		ml, err := cluster.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range ml.Members {
			names = append(names, m.Name)
		}
		slices.Sort(names)
		return names
	}

	t.Run("new version restarts one member at a time", func(t *testing.T) {
		pids := map[int]int{}
		for lrn := range 3 {
			pids[lrn] = procs[lrn].pid()
		}
		runAll(t, "2025.03.10-1", 0, 1, 2)
		var spans []span
		for lrn := range 3 {
			if procs[lrn].pid() == pids[lrn] || len(procs[lrn].restarts) != 1 {
				t.Errorf("boot-%d restarted %d times", lrn, len(procs[lrn].restarts))
			}
			spans = append(spans, procs[lrn].restarts...)
		}
		slices.SortFunc(spans, func(a, b span) int { return a.start.Compare(b.start) })
		for i := 1; i < len(spans); i++ {
			if spans[i].start.Before(spans[i-1].end) {
				t.Errorf("restarts overlap: %v and %v: two members were down at once", spans[i-1], spans[i])
			}
		}
	})

	t.Run("same version again changes nothing", func(t *testing.T) {
		runAll(t, "2025.03.10-1", 0, 1, 2)
		for lrn := range 3 {
			if n := len(procs[lrn].restarts); n != 1 {
				t.Errorf("boot-%d restarted again (%d)", lrn, n)
			}
		}
	})

	t.Run("a joining boot server becomes a member", func(t *testing.T) {
		runAll(t, "2025.03.10-1", 0, 1, 2, 3)
		if got := members(); fmt.Sprint(got) != "[boot-0 boot-1 boot-2 boot-3]" {
			t.Errorf("members = %v", got)
		}
		if len(procs[3].restarts) != 0 {
			t.Error("the new member was restarted after joining")
		}
		if v, _ := st.ServiceVersion(ctx, 3, worker.EtcdUnit); v != "2025.03.10-1" {
			t.Errorf("restart record of the new member = %q", v)
		}
	})

	t.Run("a departed boot server's member is removed", func(t *testing.T) {
		runAll(t, "2025.03.10-1", 0, 2, 3)
		if got := members(); fmt.Sprint(got) != "[boot-0 boot-2 boot-3]" {
			t.Errorf("members = %v", got)
		}
		select {
		case <-procs[1].exited:
		case <-time.After(30 * time.Second):
			t.Error("the removed member's etcd did not stop")
		}
	})
}
