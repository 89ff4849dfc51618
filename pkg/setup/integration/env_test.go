package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/testutil"
)

// binaries built once per test binary.
var (
	buildOnce sync.Once
	necoBin   string
	daemons   string // value of --start
	buildErr  error
)

func repoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// prepare puts the repository's bin/ on PATH, requires etcd and vault and
// builds neco (and the CD daemons when they exist) into a temp dir.
func prepare(t testing.TB) {
	t.Helper()
	root := repoRoot()
	os.Setenv("PATH", filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	testutil.RequireCommands(t, "etcd", "vault")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "neco-setup-bin-")
		if err != nil {
			buildErr = err
			return
		}
		var start []string
		for _, cmd := range []string{"neco", "neco-updater", "neco-worker"} {
			if _, err := os.Stat(filepath.Join(root, "cmd", cmd)); err != nil {
				continue
			}
			build := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "./cmd/"+cmd)
			build.Dir = root
			out, err := build.CombinedOutput()
			if err != nil {
				if cmd == "neco" {
					buildErr = fmt.Errorf("build %s: %v\n%s", cmd, err, out)
					return
				}
				continue
			}
			// The worker is not started here: without systemd, a GitHub
			// stand-in and a neco package it aborts and exits, which is its
			// tests' business (pkg/worker, dctest), not bootstrap's.
			if cmd == "neco-updater" {
				start = append(start, cmd)
			}
		}
		necoBin = filepath.Join(dir, "neco")
		daemons = strings.Join(start, ",")
		os.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// cluster is a set of simulated boot servers.
type cluster struct {
	t       testing.TB
	dir     string
	desc    string // cluster description file
	token   string // bootstrap token file
	c       *bootserver.Cluster
	roots   map[int]string
	timeout string
}

// newCluster picks a free 127.a.b.0/24 and ports, and writes the cluster
// description for servers 0..n-1.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	dir := t.TempDir()
	var c *bootserver.Cluster
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatal("no free loopback addresses and ports found")
		}
		a, b := 1+rand.IntN(250), 1+rand.IntN(250)
		base := 20000 + rand.IntN(40000)
		c = &bootserver.Cluster{EtcdClientPort: base, EtcdPeerPort: base + 1, VaultPort: base + 2, VaultClusterPort: base + 3, BootstrapPort: base + 4}
		for i := 0; i < n; i++ {
			c.Servers = append(c.Servers, bootserver.Server{LRN: i, Address: fmt.Sprintf("127.%d.%d.%d", a, b, i+1)})
		}
		if allFree(c) {
			break
		}
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{t: t, dir: dir, desc: filepath.Join(dir, "cluster.yml"), token: filepath.Join(dir, "token"), c: c, roots: map[int]string{}, timeout: "3m"}
	must(t, os.WriteFile(cl.desc, data, 0o644))
	must(t, os.WriteFile(cl.token, []byte("correct-horse-battery-staple-1234\n"), 0o600))
	for _, s := range c.Servers {
		cl.roots[s.LRN] = filepath.Join(dir, "boot-"+strconv.Itoa(s.LRN))
	}
	t.Cleanup(cl.killAll)
	return cl
}

func allFree(c *bootserver.Cluster) bool {
	for _, s := range c.Servers {
		for _, p := range []int{c.EtcdClientPort, c.EtcdPeerPort, c.VaultPort, c.VaultClusterPort, c.BootstrapPort} {
			l, err := net.Listen("tcp", net.JoinHostPort(s.Address, strconv.Itoa(p)))
			if err != nil {
				return false
			}
			l.Close()
		}
	}
	return true
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// result of a neco run.
type result struct {
	out  string
	code int
	dur  time.Duration
}

// neco runs the neco binary as boot server lrn.
func (cl *cluster) neco(ctx context.Context, lrn int, args ...string) result {
	cl.t.Helper()
	full := append([]string{}, args...)
	cmd := exec.CommandContext(ctx, necoBin, full...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	r := result{out: buf.String(), dur: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		cl.t.Fatalf("run neco: %v", err)
	}
	return r
}

// bootArgs are the flags that make lrn a simulated boot server.
func (cl *cluster) bootArgs(lrn int) []string {
	return []string{"--root", cl.roots[lrn], "--cluster", cl.desc, "--service-manager", "process", "--lrn", strconv.Itoa(lrn)}
}

func (cl *cluster) setupArgs(lrn int, lrns ...int) []string {
	args := append([]string{"setup"}, cl.bootArgs(lrn)...)
	args = append(args, "--bootstrap-token-file", cl.token, "--timeout", cl.timeout, "--start", daemons, "--version", "2026.01.01-1")
	for _, l := range lrns {
		args = append(args, strconv.Itoa(l))
	}
	return args
}

// setupAll runs setup on every server at once and fails unless all succeed.
func (cl *cluster) setupAll(ctx context.Context, lrns ...int) time.Duration {
	cl.t.Helper()
	start := time.Now()
	res := make([]result, len(lrns))
	var wg sync.WaitGroup
	for i, l := range lrns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = cl.neco(ctx, l, cl.setupArgs(l, lrns...)...)
		}()
	}
	wg.Wait()
	if slices.ContainsFunc(res, func(r result) bool { return r.code != 0 }) {
		// Every server's account: one stuck at a barrier is explained by
		// the log of the server it waits for.
		cl.dumpLogs()
		for i, r := range res {
			cl.t.Logf("setup on boot server %d: exit %d after %s:\n%s", lrns[i], r.code, r.dur.Round(time.Second), r.out)
		}
		cl.t.Fatal("a setup failed (outputs above)")
	}
	return time.Since(start)
}

func (cl *cluster) paths(lrn int) bootserver.Paths { return bootserver.NewPaths(cl.roots[lrn]) }

// etcd is a root client of the cluster through the given servers.
func (cl *cluster) etcd(via int, lrns ...int) *clientv3.Client {
	cl.t.Helper()
	var servers []bootserver.Server
	for _, l := range lrns {
		servers = append(servers, cl.c.Servers[l])
	}
	c, err := etcdutil.New(bootserver.EtcdConfig(cl.c, servers, cl.paths(via), ""))
	must(cl.t, err)
	cl.t.Cleanup(func() { c.Close() })
	return c
}

// certClient is an etcd client with an explicit certificate.
func (cl *cluster) certClient(caFile, cert, key string, lrns ...int) *clientv3.Client {
	cl.t.Helper()
	var servers []bootserver.Server
	for _, l := range lrns {
		servers = append(servers, cl.c.Servers[l])
	}
	cfg := etcdutil.NewConfig("")
	cfg.Endpoints = cl.c.EtcdEndpoints(servers)
	cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = caFile, cert, key
	c, err := etcdutil.New(cfg)
	must(cl.t, err)
	cl.t.Cleanup(func() { c.Close() })
	return c
}

// kill stops a service of a server hard (SIGKILL), as a crash would.
func (cl *cluster) kill(lrn int, name string) {
	pidFile := filepath.Join(cl.paths(lrn).ServicesDir, name+".pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (cl *cluster) killServer(lrn int) {
	entries, _ := os.ReadDir(cl.paths(lrn).ServicesDir)
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".pid"); ok {
			cl.kill(lrn, n)
		}
	}
}

func (cl *cluster) killAll() {
	for l := range cl.roots {
		cl.killServer(l)
	}
}

func (cl *cluster) dumpLogs() {
	for l := range cl.roots {
		for _, n := range []string{"etcd", "vault"} {
			data, err := os.ReadFile(filepath.Join(cl.paths(l).ServicesDir, n+".log"))
			if err == nil {
				if len(data) > 3000 {
					data = data[len(data)-3000:]
				}
				cl.t.Logf("--- boot-%d %s log (tail):\n%s", l, n, data)
			}
		}
	}
}
