// Package kubetest runs a real Kubernetes API server for tests: an etcd
// (bin/etcd) and a kube-apiserver (bin/kube-apiserver), found on PATH, on
// free loopback ports, with certificates made in the test, the
// authorization of a CKE cluster (Node,RBAC, no anonymous requests) and
// --endpoint-reconciler-type=none as CKE runs it. Nothing else runs: no
// controller-manager, scheduler or kubelet, so objects are stored but not
// acted on.
//
// Start runs one for a test. A test package that shares one among its
// tests, as starting one takes seconds, calls Main from TestMain and Shared
// from its tests. Without etcd or kube-apiserver on PATH the test is
// skipped, or fails under CI=true (testutil.Missing).
//
// This is test support, not production code.
package kubetest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/pki"
	"github.com/openneco/neco/pkg/testutil"
)

// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
const ServiceClusterIPRange = "10.68.0.0/16"

// startTimeout bounds the start of etcd and of the API server, on a loaded
// machine.
const startTimeout = 3 * time.Minute

// Cluster is a running API server.
type Cluster struct {
	// URL is the API server's https://127.0.0.1:<port>.
	URL string
	// Config reaches the API server as an administrator (a client
	// certificate of group system:masters).
	Config kubeapi.Config
	// CACert is the PEM certificate of the CA of the server's and clients'
	// certificates.
	CACert []byte

	ca        *pki.CA
	dir       string
	etcd      *process
	apiserver *process
	stop      func()
}

// Start runs an API server until t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bins := testutil.RequireCommands(t, "etcd", "kube-apiserver")
	c, err := launch(bins[0], bins[1])
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

var shared struct {
	main    bool
	once    sync.Once
	cluster *Cluster
	err     error
}

// Main runs the tests of m and then stops the API server Shared started,
// returning m.Run's code: call os.Exit(kubetest.Main(m)) from TestMain.
func Main(m *testing.M) int {
	shared.main = true
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.stop()
	}
	return code
}

// Shared returns the API server of the test binary, started by its first
// caller; Main stops it. Tests sharing it keep to their own objects and
// namespaces.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	bins := testutil.RequireCommands(t, "etcd", "kube-apiserver")
	if !shared.main {
		t.Fatal("kubetest: Shared needs TestMain to call kubetest.Main")
	}
	shared.once.Do(func() {
		shared.cluster, shared.err = launch(bins[0], bins[1])
	})
	if shared.err != nil {
		t.Fatalf("kubetest: %v", shared.err)
	}
	return shared.cluster
}

// Client is a client of the API server as an administrator.
func (c *Cluster) Client(t testing.TB) *kubeapi.Client {
	t.Helper()
	client, err := kubeapi.New(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

// IssueClient makes a client certificate for user cn in groups orgs, and
// its key, PEM.
func (c *Cluster) IssueClient(t testing.TB, cn string, orgs ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := issue(c.ca, cn, orgs, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// ClientConfig is a Config reaching the API server as user cn in groups
// orgs.
func (c *Cluster) ClientConfig(t testing.TB, cn string, orgs ...string) kubeapi.Config {
	t.Helper()
	cfg := c.Config
	cfg.ClientCert, cfg.ClientKey = c.IssueClient(t, cn, orgs...)
	return cfg
}

// Logs is the end of the API server's output.
func (c *Cluster) Logs() string { return c.apiserver.log.String() }

// namespaceName is what of a test's name a namespace name may hold.
var namespaceName = regexp.MustCompile(`[^a-z0-9]+`)

// Namespace creates a namespace for the test t, named after it. It is not
// deleted: without a controller-manager a deleted namespace stays
// Terminating.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.Trim(namespaceName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1_000_000)
	body := fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, name)
	if err := c.Client(t).Do(t.Context(), http.MethodPost, "/api/v1/namespaces", kubeapi.ContentJSON, body, nil); err != nil {
		t.Fatal(err)
	}
	return name
}

// files are the certificates and keys the API server reads.
type files struct {
	dir                                     string
	ca, serverCert, serverKey, saPub, saKey string
}

// launch starts etcd and the API server in a new temporary directory.
func launch(etcdBin, apiserverBin string) (c *Cluster, err error) {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()

	ca, err := pki.NewCA("kubetest CA", certTTL)
	if err != nil {
		return nil, err
	}
	f, err := writeFiles(dir, ca)
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := issue(ca, "kubetest-admin", []string{"system:masters"}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}

	etcd, etcdURL, err := retryPort(func() (*process, string, error) { return startEtcd(etcdBin, dir) })
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { etcd.stop(10 * time.Second) })

	var cfg kubeapi.Config
	apiserver, url, err := retryPort(func() (*process, string, error) {
		p, url, err := startAPIServer(apiserverBin, f, etcdURL)
		if err != nil {
			return nil, "", err
		}
		cfg = kubeapi.Config{
			Servers:    []string{url},
			CACert:     ca.CertPEM(),
			ClientCert: adminCert,
			ClientKey:  adminKey,
		}
		if err := waitAPIServer(p, cfg); err != nil {
			p.stop(10 * time.Second)
			return nil, "", err
		}
		return p, url, nil
	})
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { apiserver.stop(30 * time.Second) })

	return &Cluster{
		URL:       url,
		Config:    cfg,
		CACert:    ca.CertPEM(),
		ca:        ca,
		dir:       dir,
		etcd:      etcd,
		apiserver: apiserver,
		stop:      sync.OnceFunc(stopAll),
	}, nil
}

func writeFiles(dir string, ca *pki.CA) (*files, error) {
	f := &files{dir: dir}
	serverCert, serverKey, err := issue(ca, "kube-apiserver", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	saKey, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := pki.EncodeKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	saPubPEM := pemBlock("PUBLIC KEY", saPubDER)
	for _, w := range []struct {
		name string
		data []byte
		path *string
	}{
		{"ca.crt", ca.CertPEM(), &f.ca},
		{"apiserver.crt", serverCert, &f.serverCert},
		{"apiserver.key", serverKey, &f.serverKey},
		{"sa.pub", saPubPEM, &f.saPub},
		{"sa.key", saKeyPEM, &f.saKey},
	} {
		*w.path = filepath.Join(dir, w.name)
		if err := os.WriteFile(*w.path, w.data, 0o600); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// errPortTaken is a start that failed because its port was taken.
var errPortTaken = errors.New("port taken")

// retryPort starts a server on free ports, again on other ports when one
// was taken between its choice and the server's listen.
func retryPort(start func() (*process, string, error)) (*process, string, error) {
	var err error
	for range 3 {
		var p *process
		var url string
		if p, url, err = start(); err == nil || !errors.Is(err, errPortTaken) {
			return p, url, err
		}
	}
	return nil, "", err
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func startEtcd(bin, dir string) (*process, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	dataDir := filepath.Join(dir, "etcd")
	os.RemoveAll(dataDir) // from a start on a taken port
	p, err := startProcess(bin,
		"--name=kubetest",
		"--data-dir="+dataDir,
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = p.waitFor(ctx, "etcd", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd health: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.stop(10 * time.Second)
		return nil, "", err
	}
	return p, clientURL, nil
}

func startAPIServer(bin string, f *files, etcdURL string) (*process, string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	p, err := startProcess(bin,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[0]),
		"--cert-dir="+f.dir,
		"--tls-cert-file="+f.serverCert,
		"--tls-private-key-file="+f.serverKey,
		"--client-ca-file="+f.ca,
		"--etcd-servers="+etcdURL,
		"--authorization-mode=Node,RBAC",
		"--anonymous-auth=false",
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		"--endpoint-reconciler-type=none",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+f.saPub,
		"--service-account-signing-key-file="+f.saKey,
		"--profiling=false",
	)
	if err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf("https://127.0.0.1:%d", ports[0]), nil
}

// waitAPIServer waits until the API server is ready and has made the
// default/kubernetes Service (and so the default namespace), which it does
// a moment after it is ready.
func waitAPIServer(p *process, cfg kubeapi.Config) error {
	cfg.Timeout = 10 * time.Second
	client, err := kubeapi.New(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return p.waitFor(ctx, "kube-apiserver", func(ctx context.Context) error {
		if err := client.Readyz(ctx); err != nil {
			return err
		}
		return client.Get(ctx, "/api/v1/namespaces/default/services/kubernetes", nil)
	})
}

// process is a server run by a test.
type process struct {
	cmd    *exec.Cmd
	log    *tail
	exited chan struct{}
}

func startProcess(bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	p := &process{cmd: cmd, log: &tail{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	testutil.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// waitFor calls ready until it succeeds, the process exits or ctx ends.
func (p *process) waitFor(ctx context.Context, name string, ready func(context.Context) error) error {
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			log := p.log.String()
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("%s: %w", name, errPortTaken)
			}
			return fmt.Errorf("%s exited at start (%v):\n%s", name, p.cmd.ProcessState, log)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready in %v: %v\n%s", name, startTimeout, err, p.log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop ends the process, with SIGTERM and after grace with SIGKILL.
func (p *process) stop(grace time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// tailMax is how much of a process's output a tail keeps.
const tailMax = 256 << 10

// tail keeps the end of a process's output.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
