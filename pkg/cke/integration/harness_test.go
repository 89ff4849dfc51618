package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/spec"
)

const (
	bootNS   = "boot"
	bootAddr = "10.72.0.1"
	// nodes are n0, n1, … at 10.72.0.10, .11, …
	subnet = "10.72.0."
)

func nodeName(i int) string { return fmt.Sprintf("n%d", i) }
func nodeAddr(i int) string { return fmt.Sprintf("%s%d", subnet, 10+i) }

// dc is a running virtual data center with a boot server namespace.
type dc struct {
	t     testing.TB
	in    *vdc.Instance
	nodes int
	dir   string
	bin   map[string]string // program → path on this machine
	kube  string            // kubeconfig path
	env   []string          // environment of ckecli and kubectl
	procs map[string]*exec.Cmd

	closeOnce sync.Once
	closers   []func() // run in reverse by close
}

// close stops what the data center runs and destroys it; the test's
// clean-up calls it, a benchmark between its rounds.
func (d *dc) close() {
	d.closeOnce.Do(func() {
		for i := len(d.closers) - 1; i >= 0; i-- {
			d.closers[i]()
		}
	})
}

func requireHost(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip", "systemd-nspawn", "debootstrap", "nsenter", "kube", "kubectl", "etcd", "vault")
}

// clusterSpec is the data center: one bridge, the boot namespace and
// nodes nspawn machines with the root tree of the data center's machines.
func clusterSpec(nodes int) *spec.Cluster {
	c := &spec.Cluster{
		Networks: []*spec.Network{{Kind: spec.KindNetwork, Name: "k8s", Type: spec.NetworkInternal}},
		Namespaces: []*spec.NetworkNamespace{{Kind: spec.KindNetworkNamespace, Name: bootNS,
			Interfaces: []spec.Interface{{Network: "k8s", Addresses: []string{bootAddr + "/24"}}}}},
		Rootfses: []*spec.Rootfs{{Kind: spec.KindRootfs, Name: "node", Suite: "bookworm", Variant: "minbase", Packages: menu.RootfsPackages()}},
	}
	for i := range nodes {
		c.NspawnNodes = append(c.NspawnNodes, &spec.NspawnNode{Kind: spec.KindNspawnNode, Name: nodeName(i), Rootfs: "node",
			Hostname:   nodeName(i),
			Interfaces: []spec.Interface{{Network: "k8s", Addresses: []string{nodeAddr(i) + "/24"}}}})
	}
	return c
}

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newDC creates the data center and starts etcd and Vault in the boot
// namespace; everything is torn down when the test ends.
func newDC(t testing.TB, nodes int) *dc {
	t.Helper()
	requireHost(t)
	b := make([]byte, 2)
	rand.Read(b)
	n := vdc.Names{Instance: "k" + hex.EncodeToString(b), StateRoot: t.TempDir()}
	d := &dc{t: t, nodes: nodes, dir: t.TempDir(), bin: map[string]string{}, procs: map[string]*exec.Cmd{}}
	d.closers = append(d.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := vdc.Destroy(ctx, n); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	t.Cleanup(d.close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	timings, err := vdc.Create(ctx, clusterSpec(nodes), vdc.Options{Names: n, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("data center created in %s (root tree %s)", timings.Total, timings.Rootfs)
	in, err := vdc.Open(n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.WaitBooted(ctx); err != nil {
		t.Fatal(err)
	}
	d.in = in
	for _, p := range []string{"etcd", "vault", "kube", "kubectl"} {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		d.bin[p] = path
	}
	d.bin["cke"] = testutil.GoBinary(t, "github.com/openneco/neco/cmd/cke")
	d.bin["ckecli"] = testutil.GoBinary(t, "github.com/openneco/neco/cmd/ckecli")
	d.kube = filepath.Join(d.dir, "kubeconfig")
	d.env = []string{"VAULT_ADDR=http://127.0.0.1:8200", "VAULT_TOKEN=root", "KUBECONFIG=" + d.kube,
		"PATH=" + os.Getenv("PATH"), "HOME=" + d.dir}

	d.start("etcd", d.bin["etcd"], "--data-dir="+filepath.Join(d.dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=default=http://127.0.0.1:2380", "--unsafe-no-fsync")
	d.start("vault", d.bin["vault"], "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=127.0.0.1:8200")
	d.eventually(time.Minute, "etcd and Vault answer", func() error {
		if _, err := d.ckecli("leader"); err != nil && !strings.Contains(err.Error(), "no leader") && !strings.Contains(err.Error(), "exit status 3") {
			return err
		}
		_, err := d.bootRun("sh", "-c", "curl -fsS http://127.0.0.1:8200/v1/sys/health")
		return err
	})
	return d
}

// bootCmd is a command in the boot namespace.
func (d *dc) bootCmd(ctx context.Context, argv ...string) *exec.Cmd {
	args, err := d.in.ExecArgs(bootNS, argv)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = d.env
	return cmd
}

// start runs a daemon in the boot namespace until the test ends; its
// output goes to a log file shown when the test fails.
func (d *dc) start(name string, argv ...string) *exec.Cmd {
	d.t.Helper()
	log := filepath.Join(d.dir, name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := d.bootCmd(context.Background(), argv...)
	cmd.Stdout, cmd.Stderr = f, f
	testutil.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.procs[name] = cmd
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	d.closers = append(d.closers, func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if d.t.Failed() {
			data, _ := os.ReadFile(log)
			if len(data) > 8000 {
				data = data[len(data)-8000:]
			}
			d.t.Logf("--- %s log (tail) ---\n%s", name, data)
		}
	})
	return cmd
}

// bootRun runs a command in the boot namespace and returns its stdout.
func (d *dc) bootRun(argv ...string) (string, error) {
	return d.bootRunIn(nil, argv...)
}

func (d *dc) bootRunIn(stdin []byte, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := d.bootCmd(ctx, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (d *dc) ckecli(args ...string) (string, error) {
	return d.bootRun(append([]string{d.bin["ckecli"], "--config=", "--etcd-endpoints=http://127.0.0.1:2379"}, args...)...)
}

func (d *dc) mustCkecli(args ...string) string {
	d.t.Helper()
	out, err := d.ckecli(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *dc) kubectl(args ...string) (string, error) {
	return d.bootRun(append([]string{d.bin["kubectl"], "--request-timeout=20s"}, args...)...)
}

// node runs a command on machine i.
func (d *dc) node(i int, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return d.in.Run(ctx, nodeName(i), argv...)
}

func (d *dc) mustNode(i int, argv ...string) string {
	d.t.Helper()
	out, err := d.node(i, argv...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// eventually polls f every second until it succeeds or timeout passes.
func (d *dc) eventually(timeout time.Duration, what string, f func() error) time.Duration {
	d.t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(time.Second)
	}
	d.dumpState()
	d.t.Fatalf("%s: not after %s: %v", what, timeout, err)
	return 0
}

// dumpState logs what the engine and the nodes say, for a failure.
func (d *dc) dumpState() {
	out, _ := d.ckecli("status")
	d.t.Logf("--- ckecli status ---\n%s", out)
	out, _ = d.ckecli("history", "-n", "8")
	d.t.Logf("--- ckecli history ---\n%s", out)
	for i := range d.nodes {
		out, _ := d.node(i, "sh", "-c", "systemctl list-units --all --no-legend 'cke-*' containerd.service; journalctl -n 30 --no-pager -u 'cke-*' 2>&1 | tail -30")
		d.t.Logf("--- %s ---\n%s", nodeName(i), out)
	}
}

// prepareNodes does what a machine's set-up (Ignition, the registry)
// gives a node: the engine's SSH key, the images, a CNI network of its
// own for pods.
func (d *dc) prepareNodes(images []byte) {
	d.t.Helper()
	key := strings.TrimSpace(d.mustCkecli("vault", "ssh-pubkey"))
	for i := range d.nodes {
		d.mustNode(i, "sh", "-c", "mkdir -p -m 700 /root/.ssh && echo '"+key+"' > /root/.ssh/authorized_keys")
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,`+
			`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.%d.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},{"type":"portmap","capabilities":{"portMappings":true}}]}`, i)
		d.mustNode(i, "sh", "-c", "mkdir -p /etc/cni/net.d && echo '"+conf+"' > /etc/cni/net.d/10-pods.conflist")
		// Routes to the other nodes' pods (the pod network's job, later).
		for j := range d.nodes {
			if j != i {
				d.mustNode(i, "ip", "route", "replace", fmt.Sprintf("10.244.%d.0/24", j), "via", nodeAddr(j))
			}
		}
		args, err := d.in.ExecArgs(nodeName(i), []string{"ctr", "-n", "k8s.io", "images", "import", "--all-platforms", "-"})
		if err != nil {
			d.t.Fatal(err)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = bytes.NewReader(images)
		if out, err := cmd.CombinedOutput(); err != nil {
			d.t.Fatalf("%s: import images: %v: %s", nodeName(i), err, out)
		}
	}
}

// imagesTar packs the OCI layout of `make images` for ctr import.
func imagesTar(t testing.TB) []byte {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "build", "images")
	testutil.RequireFile(t, filepath.Join(dir, "index.json"))
	out, err := exec.Command("tar", "-C", dir, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// clusterYAML is cluster.yml for machines 0..n-1 with control planes cps.
func clusterYAML(n int, cps ...int) string {
	var b strings.Builder
	b.WriteString("name: test\nservice_subnet: 10.68.0.0/16\nnodes:\n")
	for i := range n {
		cp := false
		for _, c := range cps {
			cp = cp || c == i
		}
		fmt.Fprintf(&b, "- address: %s\n  hostname: %s\n  user: root\n  control_plane: %v\n  labels: {test.openneco.io/index: \"%d\"}\n",
			nodeAddr(i), nodeName(i), cp, i)
	}
	return b.String()
}

// setCluster stores cluster.yml.
func (d *dc) setCluster(yml string) {
	d.t.Helper()
	if out, err := d.bootRunIn([]byte(yml), d.bin["ckecli"], "--config=", "--etcd-endpoints=http://127.0.0.1:2379", "cluster", "set", "-"); err != nil {
		d.t.Fatalf("cluster set: %v %s", err, out)
	}
}

// readyNodes returns the names of the Ready nodes.
func (d *dc) readyNodes() ([]string, error) {
	out, err := d.kubectl("get", "nodes", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var ready []string
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready = append(ready, n.Metadata.Name)
			}
		}
	}
	return ready, nil
}

// waitReady waits until exactly the machines idx are Ready nodes and the
// engine has nothing left to do.
func (d *dc) waitReady(timeout time.Duration, idx ...int) time.Duration {
	d.t.Helper()
	var want []string
	for _, i := range idx {
		want = append(want, nodeName(i))
	}
	return d.eventually(timeout, fmt.Sprintf("nodes %v Ready and the engine done", want), func() error {
		if _, err := os.Stat(d.kube); err != nil {
			if err := d.issueKubeconfig(); err != nil {
				return err
			}
		}
		ready, err := d.readyNodes()
		if err != nil {
			return err
		}
		if strings.Join(ready, ",") != strings.Join(want, ",") {
			return fmt.Errorf("ready: %v", ready)
		}
		st, err := d.status()
		if err != nil {
			return err
		}
		if st.Phase != "completed" {
			return fmt.Errorf("engine in phase %s (%s %s)", st.Phase, st.Waiting, st.Error)
		}
		return nil
	})
}

func (d *dc) issueKubeconfig() error {
	out, err := d.ckecli("kubernetes", "issue", "--ttl=2h", "--server=https://"+nodeAddr(0)+":6443")
	if err != nil {
		return err
	}
	return os.WriteFile(d.kube, []byte(out), 0o600)
}

type engineStatus struct {
	Leader  string `json:"leader"`
	Phase   string `json:"phase"`
	Waiting string `json:"waiting"`
	Error   string `json:"error"`
}

func (d *dc) status() (*engineStatus, error) {
	out, err := d.ckecli("status", "-o", "json")
	if err != nil {
		return nil, err
	}
	var st engineStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	return &st, nil
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }

// kill kills a daemon started with start.
func (d *dc) kill(name string) {
	d.t.Helper()
	cmd := d.procs[name]
	if cmd == nil {
		d.t.Fatalf("no process %s", name)
	}
	cmd.Process.Kill()
}
