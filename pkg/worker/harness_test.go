package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/githubtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/release"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/updater"
	"github.com/openneco/neco/pkg/worker"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

const owner, repo = "openneco", "neco"

var (
	quietLogs sync.Once
	clusters  atomic.Int64
	debMu     sync.Mutex
	debCache  = map[string]string{}
)

// buildDeb builds a real neco package of version with debian/build.sh (no
// programs inside: the maintainer scripts, templates and configuration are
// the real ones) and returns its path. Packages are cached for the test
// that built them and removed with its temporary directory.
func buildDeb(t testing.TB, version string) string {
	t.Helper()
	testutil.RequireCommands(t, "dpkg", "dpkg-deb", "fakeroot")
	key := t.Name() + "\x00" + version
	debMu.Lock()
	defer debMu.Unlock()
	if p, ok := debCache[key]; ok {
		return p
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "emptybin")
	os.MkdirAll(bin, 0o755)
	script, _ := filepath.Abs("../../debian/build.sh")
	cmd := exec.Command(script, version, bin, dir)
	cmd.Env = append(os.Environ(), "DEB_COMPRESS=gzip")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh %s: %v\n%s", version, err, out)
	}
	p := filepath.Join(dir, neco.DebName(version))
	debCache[key] = p
	t.Cleanup(func() {
		debMu.Lock()
		defer debMu.Unlock()
		delete(debCache, key)
	})
	return p
}

func sha256File(t testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// publish adds release-<version> with its package and checksum.
func publish(t testing.TB, gh *githubtest.Server, version string) {
	t.Helper()
	p := buildDeb(t, version)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	gh.AddRelease(owner, repo, githubtest.Release{Tag: "release-" + version, Assets: []githubtest.Asset{
		{Name: neco.DebName(version), Data: data},
		{Name: neco.DebName(version) + ".sha256", Data: []byte(sha256File(t, p) + "  " + neco.DebName(version) + "\n")},
	}})
}

// localServices is a ServiceManager for tests: it runs nothing, but
// records restarts and can be told to fail.
type localServices struct {
	mu       sync.Mutex
	active   map[string]bool
	restarts map[string]int
}

func (s *localServices) Restart(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		s.active, s.restarts = map[string]bool{}, map[string]int{}
	}
	s.active[name] = true
	s.restarts[name]++
	return nil
}

func (s *localServices) Active(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[name], nil
}

func (s *localServices) Restarts(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts[name]
}

// countingUploader counts uploads per version.
type countingUploader struct {
	worker.DirUploader
	mu     sync.Mutex
	counts map[string]int
}

func (u *countingUploader) Upload(ctx context.Context, c worker.Contents) error {
	if err := u.DirUploader.Upload(ctx, c); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts == nil {
		u.counts = map[string]int{}
	}
	u.counts[c.Version]++
	return nil
}

func (u *countingUploader) Count(v string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[v]
}

// cluster is a CD system in one etcd namespace: a fake GitHub, boot
// servers each with a scratch root and a worker, and updaters.
type cluster struct {
	t        testing.TB
	prefix   string
	gh       *githubtest.Server
	st       *storage.Storage
	uploader *countingUploader
	mu       sync.Mutex
	servers  map[int]*bootServer
	timings  *stepTimings
	// poll, when set, makes workers and updaters poll instead of watch.
	poll time.Duration
}

type bootServer struct {
	lrn  int
	root deb.RootInstaller
	svc  *localServices
	fail atomic.Pointer[string] // a step name to fail with an error
	// unavailable counts the runs of the first step still to fail as
	// when etcd has no leader for a moment.
	unavailable atomic.Int32
	gateStep    atomic.Pointer[string]
	inGate      chan struct{}
	cancel      context.CancelFunc
	done        chan struct{}
	starts      atomic.Int32 // worker process starts
}

type stepTimings struct {
	mu    sync.Mutex
	spans map[string][]time.Duration
}

func (s *stepTimings) add(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spans == nil {
		s.spans = map[string][]time.Duration{}
	}
	s.spans[name] = append(s.spans[name], d)
}

func newCluster(t testing.TB, config map[string]string) *cluster {
	t.Helper()
	quietLogs.Do(func() {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	})
	c := &cluster{t: t, prefix: fmt.Sprintf("%s/%d/", t.Name(), clusters.Add(1)), gh: githubtest.NewServer(t), servers: map[int]*bootServer{}, timings: &stepTimings{}}
	c.gh.Token = "test-token"
	c.st = storage.New(etcdtest.NewClient(t, c.prefix))
	c.uploader = &countingUploader{DirUploader: worker.DirUploader{Dir: t.TempDir()}}
	ctx := context.Background()
	base := map[string]string{
		neco.KeyEnv: "prod", neco.KeyGitHubAPIURL: c.gh.APIURL(), neco.KeyGitHubRepo: owner + "/" + repo,
		neco.KeyGitHubToken: "test-token", neco.KeyCheckUpdateInterval: "1s", neco.KeyStepTimeout: "20s",
	}
	for k, v := range config {
		base[k] = v
	}
	for k, v := range base {
		if err := c.st.SetConfig(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// addServer prepares boot server lrn with version installed ("" for
// none), registers it and starts its worker.
func (c *cluster) addServer(lrn int, installed string) *bootServer {
	c.t.Helper()
	b := &bootServer{lrn: lrn, root: deb.RootInstaller{Root: c.t.TempDir()}, svc: &localServices{}}
	if err := b.root.Init(); err != nil {
		c.t.Fatal(err)
	}
	if installed != "" {
		if err := b.root.Install(context.Background(), buildDeb(c.t, installed)); err != nil {
			c.t.Fatal(err)
		}
	}
	c.mu.Lock()
	c.servers[lrn] = b
	c.mu.Unlock()
	if err := c.st.RegisterBootServer(context.Background(), lrn, "127.0.0.1"); err != nil {
		c.t.Fatal(err)
	}
	c.startWorker(b)
	return b
}

func (c *cluster) steps(b *bootServer) []worker.Step {
	share := filepath.Join(b.root.Root, "usr/share/neco")
	steps := []worker.Step{
		worker.ServiceConfigStep("sabakan-config", "sabakan", filepath.Join(b.root.Root, "etc/sabakan/config.yml"),
			worker.TemplateFile(filepath.Join(share, "sabakan.yml"), "127.0.0.1"), b.svc),
		worker.SabakanContentsStep(share, c.uploader, nil),
		worker.FinalStep(),
	}
	for i := range steps {
		s := steps[i]
		run := s.Run
		steps[i].Run = func(ctx context.Context, e *worker.StepEnv) error {
			start := time.Now()
			defer func() { c.timings.add(s.Name, time.Since(start)) }()
			if i == 0 && b.unavailable.Load() > 0 {
				b.unavailable.Add(-1)
				return fmt.Errorf("injected: %w", rpctypes.ErrLeaderChanged)
			}
			if f := b.fail.Load(); f != nil && *f == s.Name {
				return fmt.Errorf("injected failure in %s on boot server %d", s.Name, b.lrn)
			}
			if g := b.gateStep.Load(); g != nil && *g == s.Name {
				close(b.inGate)
				<-ctx.Done()
				return ctx.Err()
			}
			return run(ctx, e)
		}
	}
	return steps
}

// startWorker runs b's worker like systemd would: after a handover (a new
// package installed) a new process starts.
func (c *cluster) startWorker(b *bootServer) {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	client := etcdtest.NewClient(c.t, c.prefix)
	go func() {
		defer close(b.done)
		for ctx.Err() == nil {
			b.starts.Add(1)
			w := &worker.Worker{LRN: b.lrn, Storage: storage.New(client), Installer: b.root, Steps: c.steps(b),
				DownloadDir: c.t.TempDir(), PollInterval: c.poll,
				NewDownloader: func(cfg neco.Config) (worker.Downloader, error) {
					r, err := release.New(cfg)
					if r != nil {
						r.Backoff = 20 * time.Millisecond
					}
					return r, err
				}}
			err := w.Run(ctx)
			if err != nil && !errors.Is(err, worker.ErrHandover) {
				c.t.Errorf("worker %d: %v", b.lrn, err)
				return
			}
		}
	}()
	c.t.Cleanup(func() { cancel(); <-b.done })
}

// killWorker stops b's worker abruptly (mid-step if it is in one).
func (c *cluster) killWorker(b *bootServer) {
	b.cancel()
	<-b.done
}

// startUpdater runs an updater on a client of its own, connected to etcd
// through a TCP proxy. The returned function kills it abruptly: the proxy
// drops every connection, so the updater can neither write nor resign and
// its lease expires, as after a crash or a network partition.
func (c *cluster) startUpdater(name string) (kill func()) {
	px := newProxy(c.t, strings.TrimPrefix(etcdtest.Endpoint(), "http://"))
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + px.addr()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	etcdutil.Scope(client, c.prefix, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	u := &updater.Updater{Storage: storage.New(client), Name: name, SessionTTL: 2, PollInterval: c.poll}
	go func() {
		defer close(done)
		u.Run(ctx)
	}()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			px.close()
			cancel()
			<-done
			client.Close()
		})
	}
	c.t.Cleanup(kill)
	return kill
}

// proxy forwards TCP connections to target until closed.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// waitFor polls cond on snapshots until it holds.
func (c *cluster) waitFor(what string, timeout time.Duration, cond func(s *storage.Snapshot) bool) *storage.Snapshot {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var snap *storage.Snapshot
	for time.Now().Before(deadline) {
		var err error
		snap, err = c.st.Snapshot(context.Background())
		if err == nil && cond(snap) {
			return snap
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("timed out after %s waiting for %s; request %+v statuses %v", timeout, what, snap.Request, dump(snap.Statuses))
	return nil
}

func dump(m map[int]*neco.UpdateStatus) string {
	s := ""
	for k, v := range m {
		s += fmt.Sprintf(" %d:%+v", k, *v)
	}
	return s
}

// completed holds when the request is version on exactly servers and
// every one of them completed it.
func completed(version string, servers ...int) func(s *storage.Snapshot) bool {
	return func(s *storage.Snapshot) bool {
		if s.Request == nil || s.Request.Version != version || s.Request.Stop || fmt.Sprint(s.Request.Servers) != fmt.Sprint(servers) {
			return false
		}
		st := s.CurrentStatuses()
		for _, lrn := range servers {
			if st[lrn] == nil || st[lrn].Cond != neco.CondCompleted {
				return false
			}
		}
		return true
	}
}

func stopped(s *storage.Snapshot) bool { return s.Request != nil && s.Request.Stop }

func (c *cluster) installed(b *bootServer) string {
	c.t.Helper()
	v, err := b.root.InstalledVersion(context.Background(), "neco")
	if err != nil && !errors.Is(err, deb.ErrNotInstalled) {
		c.t.Fatal(err)
	}
	return v
}

func etcdLeader(t *testing.T, c *cluster) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, err := etcdutil.CurrentLeader(context.Background(), c.st.Client, storage.LeaderUpdater)
		if err == nil && v != "" {
			return v, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", errors.New("no leader")
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
