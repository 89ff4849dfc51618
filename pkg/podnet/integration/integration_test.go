package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/cke/resources"
	"github.com/openneco/neco/pkg/cke/units"
	"github.com/openneco/neco/pkg/podnet"
	"github.com/openneco/neco/pkg/testutil"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const nodeIP = "10.99.0.1"

// node is a podnet daemon in a network namespace of its own.
type node struct {
	t       *testing.T
	name    string // Kubernetes node name and namespace suffix
	ns      string // network namespace name
	dir     string
	bin     string
	socket  string
	daemon  *exec.Cmd
	logs    *syncBuffer
	apiPort int
}

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netnsAdd makes a named network namespace, removed when the test ends.
func netnsAdd(t *testing.T, name string) {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
}

// proxyInto listens on 127.0.0.1 inside the network namespace ns and
// forwards every connection to target on this machine's loopback: the
// node daemon reaches the API server through it.
func proxyInto(t *testing.T, ns, target string) int {
	t.Helper()
	ch := make(chan net.Listener, 1)
	errc := make(chan error, 1)
	go func() {
		var ln net.Listener
		err := testutil.InNetns("/run/netns/"+ns, func() (err error) {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			return err
		})
		if err != nil {
			errc <- err
			return
		}
		ch <- ln
	}()
	var ln net.Listener
	select {
	case ln = <-ch:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// inNetns runs f in the network namespace name.
func inNetns(t *testing.T, name string, f func() error) {
	t.Helper()
	if err := testutil.InNetns("/run/netns/"+name, f); err != nil {
		t.Fatal(err)
	}
}

// setupAPI installs podnet's resources as the engine does (definitions,
// permissions, the default pool) plus a node, and returns the admin client.
func setupAPI(t *testing.T, api *kubetest.Cluster, nodeName string) *kubeapi.Client {
	t.Helper()
	ctx := context.Background()
	admin := api.Client(t)
	bits := 2 // blocks of 4 addresses: a few pods take several blocks
	c := &cke.Cluster{PodNetwork: cke.PodNetwork{Subnets: []string{"10.100.0.0/24"}, BlockSizeBits: &bits}}
	all := resources.Engine(c)
	for _, k := range resources.Sorted(keysOf(all)) {
		if !strings.Contains(k, "podnet") && !strings.HasPrefix(k, "AddressPool/") {
			continue
		}
		eventually(t, 60*time.Second, func() error {
			_, err := admin.Apply(ctx, all[k], "test", true)
			return err
		})
	}
	node := fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`, nodeName)
	if err := admin.Do(ctx, "POST", "/api/v1/nodes", kubeapi.ContentJSON, []byte(node), nil); err != nil && !kubeapi.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return admin
}

// eventually retries f until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func keysOf(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// startNode runs the daemon in a new network namespace with the engine's
// podnet certificate.
func startNode(t *testing.T, api *kubetest.Cluster, name string) *node {
	t.Helper()
	n := &node{t: t, name: name, ns: "pn-" + name, dir: t.TempDir()}
	n.bin = testutil.GoBinary(t, "github.com/openneco/neco/cmd/podnet")
	n.socket = filepath.Join(n.dir, "podnet.sock")
	netnsAdd(t, n.ns)
	n.apiPort = proxyInto(t, n.ns, strings.TrimPrefix(api.URL, "https://"))
	cert, key := api.IssueClient(t, units.PodnetUser)
	kc := kubeapi.Kubeconfig(fmt.Sprintf("https://127.0.0.1:%d", n.apiPort), api.CACert, cert, key, units.PodnetUser)
	if err := os.WriteFile(filepath.Join(n.dir, "kubeconfig"), kc, 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(n.dir, "bin"), 0o755)
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	n.logs = &syncBuffer{}
	// The daemon writes its configuration once it serves; one left by an
	// earlier run says nothing.
	os.Remove(filepath.Join(n.dir, "net.d", "10-podnet.conflist"))
	n.daemon = exec.Command("ip", "netns", "exec", n.ns, n.bin, "daemon", "--node-name="+n.name, "--node-ip="+nodeIP,
		"--kubeconfig="+filepath.Join(n.dir, "kubeconfig"), "--socket="+n.socket, "--mtu=1400",
		"--cni-bin-dir="+filepath.Join(n.dir, "bin"), "--cni-conf-dir="+filepath.Join(n.dir, "net.d"),
		"--metrics-address=127.0.0.1:9384", "--resync=2s")
	n.daemon.Stdout, n.daemon.Stderr = n.logs, n.logs
	testutil.DieWithTest(n.daemon)
	if err := n.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(n.dir, "net.d", "10-podnet.conflist")); err != nil {
			return fmt.Errorf("no CNI configuration yet; daemon log:\n%s", n.logs)
		}
		return nil
	})
}

func (n *node) stop() {
	if n.daemon == nil {
		return
	}
	n.daemon.Process.Signal(os.Interrupt)
	n.daemon.Wait()
	n.daemon = nil
	if n.t.Failed() {
		n.t.Logf("daemon %s log:\n%s", n.name, n.logs)
	}
}

// syncBuffer is a daemon's output, read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cniResult is what the plugin prints for an ADD.
type cniResult struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Sandbox string `json:"sandbox"`
		Mtu     int    `json:"mtu"`
	} `json:"interfaces"`
	IPs []struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// plugin runs the installed plugin as a container runtime does.
func (n *node) plugin(cmd, containerID, netnsPath, podNS string) (cniResult, string, error) {
	conf, err := os.ReadFile(filepath.Join(n.dir, "net.d", "10-podnet.conflist"))
	if err != nil {
		n.t.Fatal(err)
	}
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &list); err != nil {
		n.t.Fatal(err)
	}
	var plugin map[string]any
	json.Unmarshal(list.Plugins[0], &plugin)
	plugin["cniVersion"], plugin["name"] = list.CNIVersion, list.Name
	stdin, _ := json.Marshal(plugin)
	return n.pluginRaw(cmd, containerID, netnsPath, podNS, stdin)
}

func (n *node) pluginRaw(cmd, containerID, netnsPath, podNS string, stdin []byte) (cniResult, string, error) {
	c := exec.Command(filepath.Join(n.dir, "bin", "podnet"))
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=" + netnsPath, "CNI_IFNAME=eth0",
		"CNI_PATH=" + filepath.Join(n.dir, "bin"),
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=" + podNS + ";K8S_POD_NAME=" + containerID}
	c.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	c.Stdout = &out
	err := c.Run()
	var res cniResult
	json.Unmarshal(out.Bytes(), &res)
	return res, out.String(), err
}

// addPool makes a pool of one subnet with blocks of four and a namespace
// using it, removed when the test ends.
func addPool(t *testing.T, admin *kubeapi.Client, pool, subnet, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.Apply(ctx, []byte(fmt.Sprintf(`{"apiVersion":%q,"kind":"AddressPool","metadata":{"name":%q},"spec":{"subnets":[%q],"blockSizeBits":2}}`,
		podnet.APIVersion, pool, subnet)), "test", true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Delete(ctx, podnet.APIVersion, podnet.KindAddressPool, "", pool) })
	if _, err := admin.Apply(ctx, []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q,"annotations":{%q:%q}}}`,
		ns, podnet.PoolAnnotation, pool)), "test", true); err != nil {
		t.Fatal(err)
	}
}

// pod is a pod network namespace.
func pod(t *testing.T, name string) string {
	netnsAdd(t, name)
	return "/run/netns/" + name
}

func blocks(t *testing.T, admin *kubeapi.Client, nodeName string) []string {
	t.Helper()
	var list struct {
		Items []podnet.AddressBlock `json:"items"`
	}
	if err := admin.Get(context.Background(), podnet.BlocksPath+"?labelSelector="+podnet.NodeLabel+"%3D"+nodeName, &list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range list.Items {
		out = append(out, b.Spec.CIDR)
	}
	return out
}

func exportRoutes(t *testing.T, ns string) string {
	return strings.TrimSpace(run(t, "ip", "-n", ns, "route", "show", "table", "119"))
}

func TestPodnet(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip")
	api := kubetest.Shared(t)
	s := suffix()
	nodeName := "n" + s
	admin := setupAPI(t, api, nodeName)
	n := startNode(t, api, nodeName)

	// Five pods: two blocks of four addresses.
	var ips []netip.Addr
	for i := range 5 {
		id := fmt.Sprintf("c%s%d", s, i)
		res, out, err := n.plugin("ADD", id, pod(t, fmt.Sprintf("pn-%s-p%d", s, i)), "default")
		if err != nil {
			t.Fatalf("ADD %d: %v\n%s\n%s", i, err, out, n.logs)
		}
		if len(res.IPs) != 1 || res.IPs[0].Gateway != nodeIP || res.CNIVersion != "1.1.0" {
			t.Fatalf("ADD result: %s", out)
		}
		p := netip.MustParsePrefix(res.IPs[0].Address)
		if p.Bits() != 32 || !netip.MustParsePrefix("10.100.0.0/24").Contains(p.Addr()) {
			t.Errorf("pod address %s", p)
		}
		for _, ip := range ips {
			if ip == p.Addr() {
				t.Fatalf("address %s handed out twice", ip)
			}
		}
		ips = append(ips, p.Addr())
	}
	if got := blocks(t, admin, nodeName); len(got) != 2 {
		t.Errorf("blocks = %v, want 2", got)
	}
	if got := exportRoutes(t, n.ns); strings.Count(got, "dev lo proto 30") != 2 {
		t.Errorf("table 119:\n%s", got)
	}

	// The pods' wiring: address, MTU, gateway; the node's /32 route.
	p0 := fmt.Sprintf("pn-%s-p0", s)
	if addr := run(t, "ip", "-n", p0, "-4", "addr", "show", "eth0"); !strings.Contains(addr, ips[0].String()+"/32") || !strings.Contains(addr, "mtu 1400") {
		t.Errorf("pod address:\n%s", addr)
	}
	if r := run(t, "ip", "-n", p0, "route"); !strings.Contains(r, "default via "+nodeIP) {
		t.Errorf("pod routes:\n%s", r)
	}
	if r := run(t, "ip", "-n", n.ns, "route", "show", "table", "116"); !strings.Contains(r, ips[0].String()+" dev ") {
		t.Errorf("table 116:\n%s", r)
	}
	// One pod reaches another through the node (TCP, both ends in the
	// pods' namespaces).
	var ln net.Listener
	inNetns(t, fmt.Sprintf("pn-%s-p1", s), func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ips[1], 0).String())
		return err
	})
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("pod1"))
			c.Close()
		}
	}()
	inNetns(t, p0, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return fmt.Errorf("pod to pod: %w", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "pod1" {
			return fmt.Errorf("pod to pod: read %q, %v", got, err)
		}
		return nil
	})

	// CHECK passes; a second ADD of the same container returns the same address.
	if _, out, err := n.plugin("CHECK", "c"+s+"0", "/run/netns/"+p0, "default"); err != nil {
		t.Errorf("CHECK: %v %s", err, out)
	}
	if res, out, err := n.plugin("ADD", "c"+s+"0", "/run/netns/"+p0, "default"); err != nil || res.IPs[0].Address != ips[0].String()+"/32" {
		t.Errorf("repeated ADD: %v %s", err, out)
	}

	// The daemon restarts and knows every pod again.
	n.stop()
	n.start()
	if _, out, err := n.plugin("CHECK", "c"+s+"4", fmt.Sprintf("/run/netns/pn-%s-p4", s), "default"); err != nil {
		t.Errorf("CHECK after a restart: %v %s", err, out)
	}
	// A repeated ADD after the restart keeps the pod's address.
	if res, out, err := n.plugin("ADD", "c"+s+"3", fmt.Sprintf("/run/netns/pn-%s-p3", s), "default"); err != nil || len(res.IPs) != 1 || res.IPs[0].Address != ips[3].String()+"/32" {
		t.Errorf("repeated ADD after a restart: %v %s (had %s)", err, out, ips[3])
	}
	if got := blocks(t, admin, nodeName); len(got) != 2 {
		t.Errorf("blocks after a restart = %v", got)
	}

	// DEL frees everything, twice without error.
	for i := range 5 {
		for range 2 {
			if _, out, err := n.plugin("DEL", fmt.Sprintf("c%s%d", s, i), fmt.Sprintf("/run/netns/pn-%s-p%d", s, i), "default"); err != nil {
				t.Errorf("DEL %d: %v %s", i, err, out)
			}
		}
	}
	if got := blocks(t, admin, nodeName); len(got) != 0 {
		t.Errorf("blocks after DEL = %v", got)
	}
	if got := exportRoutes(t, n.ns); got != "" {
		t.Errorf("table 119 after DEL:\n%s", got)
	}
	if links := run(t, "ip", "-n", n.ns, "-o", "link"); strings.Contains(links, "pn") && strings.Contains(links, "veth") {
		t.Errorf("veths left:\n%s", links)
	}
}

func TestPodnetRefusals(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip")
	api := kubetest.Shared(t)
	s := suffix()
	nodeName := "r" + s
	admin := setupAPI(t, api, nodeName)
	n := startNode(t, api, nodeName)
	ctx := context.Background()

	// A namespace whose pool has a single block of four addresses.
	subnet := fmt.Sprintf("10.101.%d.0/30", time.Now().UnixNano()%250)
	pool, ns := "tiny"+s, "tiny-"+s
	addPool(t, admin, pool, subnet, ns)
	// A pool over the same subnet, made later (or in the same second with
	// a name sorting after), is refused.
	addPool(t, admin, pool+"-late", subnet, "later-"+s)
	if res, out, err := n.plugin("ADD", "l"+s, pod(t, "pn-"+s+"-l"), "later-"+s); err == nil || !strings.Contains(res.Msg, "overlaps") {
		t.Errorf("ADD from an overlapping pool: %s", out)
	}
	for i := range 4 {
		if _, out, err := n.plugin("ADD", fmt.Sprintf("t%s%d", s, i), pod(t, fmt.Sprintf("pn-%s-t%d", s, i)), ns); err != nil {
			t.Fatalf("ADD %d: %v %s", i, err, out)
		}
	}
	links := run(t, "ip", "-n", n.ns, "-o", "link")
	res, out, err := n.plugin("ADD", "t"+s+"x", pod(t, "pn-"+s+"-tx"), ns)
	if err == nil || res.Code == 0 || !strings.Contains(res.Msg, pool) {
		t.Errorf("ADD from an exhausted pool: %v %s", err, out)
	}
	if after := run(t, "ip", "-n", n.ns, "-o", "link"); strings.Count(after, "\n") != strings.Count(links, "\n") {
		t.Errorf("a failed ADD left a link:\n%s", after)
	}

	// A missing network namespace: an error, nothing allocated.
	if _, out, err := n.plugin("ADD", "gone"+s, "/run/netns/none-"+s, "default"); err == nil {
		t.Errorf("ADD into a missing namespace: %s", out)
	}
	if got := blocks(t, admin, nodeName); len(got) != 1 {
		t.Errorf("blocks = %v, want only the tiny pool's", got)
	}

	// Malformed configuration and unknown pool.
	if res, out, err := n.pluginRaw("ADD", "m"+s, "/run/netns/pn-"+s+"-t0", "default", []byte("{")); err == nil || res.Code == 0 {
		t.Errorf("malformed configuration: %s", out)
	}
	if _, err := admin.Apply(ctx, []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"nopool-%s","annotations":{%q:"missing"}}}`,
		s, podnet.PoolAnnotation)), "test", true); err != nil {
		t.Fatal(err)
	}
	if res, out, err := n.plugin("ADD", "u"+s, pod(t, "pn-"+s+"-u"), "nopool-"+s); err == nil || !strings.Contains(res.Msg, "missing") {
		t.Errorf("ADD from a missing pool: %s", out)
	}

	// VERSION is answered by the plugin alone.
	if _, out, err := n.pluginRaw("VERSION", "", "", "", []byte(`{"cniVersion":"1.1.0"}`)); err != nil || !strings.Contains(out, "1.1.0") {
		t.Errorf("VERSION: %v %s", err, out)
	}
	// STATUS reports the daemon; with it stopped, an error.
	if _, out, err := n.plugin("STATUS", "", "", ""); err != nil {
		t.Errorf("STATUS: %v %s", err, out)
	}
	n.stop()
	if _, out, err := n.plugin("STATUS", "", "", ""); err == nil {
		t.Errorf("STATUS without a daemon: %s", out)
	}
}
