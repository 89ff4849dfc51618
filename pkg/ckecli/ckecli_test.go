package ckecli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// env is one test's namespace in the embedded etcd, seen by ckecli runs
// and by the storage the test checks with.
type env struct {
	t      *testing.T
	prefix string
	st     *storage.Storage
	dir    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, prefix: t.Name() + "/", st: storage.New(etcdtest.Client(t)), dir: t.TempDir()}
}

// result is one run of ckecli.
type result struct {
	stdout, stderr string
	code           int
}

// run runs ckecli with args, stdin as standard input, against the test's
// namespace, and prints the error as cli.Main does.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--config", "", "--etcd-endpoints", etcdtest.Endpoint(), "--etcd-prefix", e.prefix}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(&errOut, "ckecli: %v\n", err)
	}
	return result{out.String(), errOut.String(), cli.Code(err)}
}

// ok runs ckecli and fails the test unless it succeeds; it returns stdout.
func (e *env) ok(stdin string, args ...string) string {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("ckecli %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs ckecli and fails the test unless it exits with code; it
// returns stderr.
func (e *env) fails(code int, stdin string, args ...string) string {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != code {
		e.t.Fatalf("ckecli %s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r.stderr
}

func (e *env) file(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

const clusterYAML = `name: dc
service_subnet: 10.68.0.0/16
nodes:
- address: 10.69.0.4
  user: cke
  control_plane: true
- address: 10.69.0.5
  user: cke
`

func TestCluster(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if stderr := e.fails(ExitNotFound, "", "cluster", "get"); !strings.Contains(stderr, "no cluster.yml") {
		t.Errorf("get before set: %s", stderr)
	}

	if out := e.ok("", "cluster", "set", e.file("cluster.yml", clusterYAML)); out != "" {
		t.Errorf("set printed %q, want nothing", out)
	}
	got := e.ok("", "cluster", "get")
	c, err := cke.ParseCluster([]byte(got))
	if err != nil || c.Name != "dc" || len(c.Nodes) != 2 || !c.Nodes[0].ControlPlane {
		t.Fatalf("get printed %q (%v)", got, err)
	}
	var asJSON cke.Cluster
	if err := json.Unmarshal([]byte(e.ok("", "cluster", "get", "-o", "json")), &asJSON); err != nil || asJSON.Name != "dc" {
		t.Errorf("get -o json: %+v, %v", asJSON, err)
	}

	// Invalid files list every problem and store nothing.
	invalid := strings.NewReplacer("name: dc", "name: DC", "user: cke\n  control_plane", "user: \"\"\n  control_plane").Replace(clusterYAML)
	stderr := e.fails(ExitInvalid, invalid, "cluster", "set", "-")
	for _, want := range []string{"is invalid; nothing was stored:", `  - name "DC"`, "  - nodes[0].user: required"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("invalid cluster.yml: stderr lacks %q:\n%s", want, stderr)
		}
	}
	e.fails(ExitInvalid, "name: dc\nunknown_field: 1\n", "cluster", "set", "-")
	e.fails(ExitInvalid, "", "cluster", "set", filepath.Join(e.dir, "missing.yml"))

	// A valid file that breaks the constraints is refused too, until the
	// constraints allow it.
	e.ok("", "constraints", "set", "maximum-workers", "1")
	twoWorkers := clusterYAML + "- address: 10.69.0.6\n  user: cke\n"
	stderr = e.fails(ExitInvalid, twoWorkers, "cluster", "set", "-")
	if !strings.Contains(stderr, "breaks the constraints in force") || !strings.Contains(stderr, "  - 2 workers, more than maximum-workers 1") {
		t.Errorf("constraints: %s", stderr)
	}
	if c, _ := e.st.GetCluster(ctx); c == nil || c.Name != "dc" || len(c.Nodes) != 2 {
		t.Errorf("a refused cluster.yml was stored: %+v", c)
	}
	e.ok("", "constraints", "set", "maximum-workers", "2")
	e.ok(twoWorkers, "cluster", "set", "-")
	if c, _ := e.st.GetCluster(ctx); len(c.Nodes) != 3 {
		t.Errorf("cluster not replaced: %+v", c)
	}
}

func TestConstraints(t *testing.T) {
	e := newEnv(t)
	want := `control-plane-count                    1
minimum-workers-rate                   80
maximum-workers                        0
wait-seconds-to-replace-control-plane  300
wait-seconds-to-remove-retired         300
`
	if out := e.ok("", "constraints", "show"); out != want {
		t.Errorf("defaults:\n%s\nwant\n%s", out, want)
	}
	e.ok("", "constraints", "set", "maximum-workers", "1")
	e.ok("", "constraints", "set", "minimum-workers-rate", "90")
	e.ok("", "constraints", "set", "wait-seconds-to-replace-control-plane", "60")
	want2 := cke.Constraints{ControlPlaneCount: 1, MinimumWorkersRate: 90, MaximumWorkers: 1,
		WaitSecondsToReplaceControlPlane: 60, WaitSecondsToRemoveRetired: 300}
	var c cke.Constraints
	if err := json.Unmarshal([]byte(e.ok("", "constraints", "show", "-o", "json")), &c); err != nil ||
		c != want2 {
		t.Errorf("show -o json: %+v, %v", c, err)
	}
	if out := e.ok("", "constraints", "show", "-o", "yaml"); !strings.Contains(out, "maximum-workers: 1\n") {
		t.Errorf("show -o yaml: %s", out)
	}

	e.ok("", "cluster", "set", e.file("c.yml", clusterYAML))
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown name", []string{"workers", "1"}, `unknown constraint "workers"`},
		{"not a number", []string{"maximum-workers", "x"}, "not an integer"},
		{"out of range", []string{"minimum-workers-rate", "101"}, "a percentage"},
		{"one argument", []string{"maximum-workers"}, "takes 2 argument(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if stderr := e.fails(ExitInvalid, "", append([]string{"constraints", "set"}, tt.args...)...); !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
	// Nothing of the refused changes was stored.
	if c, _ := e.st.GetConstraints(context.Background()); *c != want2 {
		t.Errorf("constraints now %+v", c)
	}
	// A constraint the stored cluster.yml breaks is stored with a warning:
	// the number of control planes changes constraint first.
	r := e.run("", "constraints", "set", "control-plane-count", "3")
	if r.code != ExitOK || !strings.Contains(r.stderr, "the stored cluster.yml breaks the new constraints") {
		t.Errorf("constraints set control-plane-count 3: %+v", r)
	}
	if c, _ := e.st.GetConstraints(context.Background()); c.ControlPlaneCount != 3 {
		t.Errorf("constraints now %+v", c)
	}
}

const resourcesYAML = `# RBAC for the monitoring
apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
--- # the role
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
rules: []
---
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: monitoring
data:
  a: "--- not a separator"
`

func TestResources(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if out := e.ok("", "resource", "list"); out != "" {
		t.Errorf("list of nothing: %q", out)
	}
	e.ok("", "resource", "set", e.file("r.yml", resourcesYAML))
	want := "Namespace/monitoring\nClusterRole/reader\nConfigMap/monitoring/settings\n"
	if out := e.ok("", "resource", "list"); out != want {
		t.Errorf("list (application order):\n%s\nwant\n%s", out, want)
	}
	var keys []string
	if err := json.Unmarshal([]byte(e.ok("", "resource", "list", "-o", "json")), &keys); err != nil || len(keys) != 3 {
		t.Errorf("list -o json: %q, %v", keys, err)
	}
	got := e.ok("", "resource", "get", "ConfigMap/monitoring/settings")
	if !strings.HasPrefix(got, "apiVersion: v1\nkind: ConfigMap\n") || !strings.HasSuffix(got, "\"--- not a separator\"\n") {
		t.Errorf("get printed %q", got)
	}
	if got := e.ok("", "resource", "get", "ClusterRole/reader"); !strings.HasPrefix(got, "apiVersion:") || !strings.HasSuffix(got, "rules: []\n") {
		t.Errorf("a document kept its separator or blank lines: %q", got)
	}

	// One bad document among good ones: nothing stored, every problem named.
	bad := `apiVersion: v1
kind: ConfigMap
metadata: {name: new, namespace: monitoring}
---
apiVersion: v1
metadata: {name: nokind}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
`
	stderr := e.fails(ExitInvalid, bad, "resource", "set", "-")
	for _, w := range []string{"nothing was stored", "document at line 5: invalid: resource: no kind", "document at line 12: Namespace/monitoring is already defined"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	e.fails(ExitInvalid, "# only a comment\n---\n", "resource", "set", "-")
	cfg, err := e.st.ReadConfig(ctx)
	if err != nil || len(cfg.Resources) != 3 {
		t.Errorf("after refused sets: %q, %v", cfg.Resources, err)
	}

	e.ok("", "resource", "delete", "ClusterRole/reader")
	e.fails(ExitNotFound, "", "resource", "delete", "ClusterRole/reader")
	e.fails(ExitNotFound, "", "resource", "get", "ClusterRole/reader")
	if out := e.ok("", "resource", "list"); out != "Namespace/monitoring\nConfigMap/monitoring/settings\n" {
		t.Errorf("list after delete: %q", out)
	}
}

func TestSplitDocuments(t *testing.T) {
	for _, tt := range []struct {
		name  string
		in    string
		lines []int
		first string
	}{
		{"one", "a: 1\n", []int{1}, "a: 1\n"},
		{"leading separator", "---\na: 1\n", []int{2}, "a: 1\n"},
		{"blank lines before", "\n\n---\n\na: 1\n---\nb: 2", []int{5, 7}, "a: 1\n"},
		{"comment only", "# x\n---\n# y\n", nil, ""},
		{"separator with comment", "a: 1\n--- # next\nb: 2\n", []int{1, 3}, "a: 1\n"},
		{"not a separator", "a: |\n  ---x\n----\n", []int{1}, "a: |\n  ---x\n----\n"},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []int{1, 3}, "a: 1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs := splitDocuments([]byte(tt.in))
			var lines []int
			for _, d := range docs {
				lines = append(lines, d.line)
			}
			if fmt.Sprint(lines) != fmt.Sprint(tt.lines) {
				t.Errorf("documents at lines %v, want %v", lines, tt.lines)
			}
			if len(docs) > 0 && string(docs[0].body) != tt.first {
				t.Errorf("first document %q, want %q", docs[0].body, tt.first)
			}
		})
	}
}

func TestLeaderHistoryStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.fails(ExitNotFound, "", "leader")
	e.fails(ExitNotFound, "", "status")
	if out := e.ok("", "history"); out != "ID  STATUS  PHASE  OPERATION  START  DURATION  ERROR\n" {
		t.Errorf("empty history: %q", out)
	}

	l, err := etcdutil.Campaign(ctx, e.st.Client(), storage.LeaderElection, "boot-0", 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Resign(context.Background()) })
	if out := e.ok("", "leader"); out != "boot-0\n" {
		t.Errorf("leader: %q", out)
	}

	start := time.Now().Add(-time.Minute)
	kubelet := decide.Op{Kind: decide.StartService, Service: cke.Kubelet, Nodes: []string{"10.69.0.5"}, Reason: "not running"}
	recs := []*storage.Record{
		{Status: storage.RecordCompleted, Phase: decide.PhaseEtcdBootstrap, Op: decide.Op{Kind: decide.EtcdBootstrap, Nodes: []string{"10.69.0.4"}, Reason: "new cluster"},
			Start: start, End: start.Add(1500 * time.Millisecond), Steps: []storage.Step{{Name: "write files", Start: start, End: start.Add(time.Second)}}},
		{Status: storage.RecordFailed, Phase: decide.PhaseK8sStart, Op: kubelet, Start: start.Add(2 * time.Second), End: start.Add(3 * time.Second),
			Error: "ssh 10.69.0.5: connection refused\nmore"},
		{Status: storage.RecordRunning, Phase: decide.PhaseK8sStart, Op: kubelet, Start: start.Add(4 * time.Second),
			Steps: []storage.Step{{Name: "issue certificates", Start: start.Add(4 * time.Second)}}},
	}
	for _, r := range recs {
		if err := e.st.NewRecord(ctx, l, r); err != nil {
			t.Fatal(err)
		}
	}
	out := e.ok("", "history")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("history:\n%s", out)
	}
	for i, want := range []string{
		"3   running    k8s-start       start-service kubelet on 10.69.0.5",
		"2   failed     k8s-start       start-service kubelet on 10.69.0.5",
		"1   completed  etcd-bootstrap  etcd-bootstrap on 10.69.0.4",
	} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], " 1s ") || !strings.HasSuffix(lines[2], "ssh 10.69.0.5: connection refused") ||
		!strings.Contains(lines[3], " 1.5s") || !strings.Contains(lines[1], "+") {
		t.Errorf("durations or errors:\n%s", out)
	}
	if strings.Contains(out, "not running") {
		t.Errorf("the table shows reasons:\n%s", out)
	}
	if out := e.ok("", "history", "-n", "1"); strings.Count(out, "\n") != 2 {
		t.Errorf("history -n 1:\n%s", out)
	}
	var full []storage.Record
	if err := json.Unmarshal([]byte(e.ok("", "history", "-o", "json")), &full); err != nil || len(full) != 3 ||
		full[2].Steps[0].Name != "write files" || full[1].Op.Reason != "not running" {
		t.Errorf("history -o json: %+v, %v", full, err)
	}
	e.fails(ExitInvalid, "", "history", "-n", "-1")

	st := &storage.Status{Leader: "boot-0", Phase: decide.PhaseK8sStart, Ops: []decide.Op{kubelet},
		Waiting: "kube-apiserver on 10.69.0.4 to serve", Nodes: map[string]bool{"10.69.0.4": true, "10.69.0.5": false}, Time: time.Now().Add(-5 * time.Second)}
	if err := e.st.PutStatus(ctx, l, st); err != nil {
		t.Fatal(err)
	}
	out = e.ok("", "status")
	for _, want := range []string{
		"leader:  boot-0\n", "phase:   k8s-start\n", "waiting: kube-apiserver on 10.69.0.4 to serve\n", " ago)\n",
		"running:\n  #3 start-service kubelet on 10.69.0.5: not running (step 1: issue certificates), for ",
		"operations:\n  start-service kubelet on 10.69.0.5: not running\n",
		"nodes: 1 reachable of 2; unreachable: 10.69.0.5\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		CurrentLeader string          `json:"current_leader"`
		Phase         decide.Phase    `json:"phase"`
		Nodes         map[string]bool `json:"nodes_reachable"`
		Running       []storage.Record
	}
	if err := json.Unmarshal([]byte(e.ok("", "status", "-o", "json")), &rep); err != nil ||
		rep.CurrentLeader != "boot-0" || rep.Phase != decide.PhaseK8sStart || len(rep.Nodes) != 2 || len(rep.Running) != 1 {
		t.Errorf("status -o json: %+v, %v", rep, err)
	}

	// A decision with an error prints it and exits 1.
	st.Error = "etcd: no quorum"
	if err := e.st.PutStatus(ctx, l, st); err != nil {
		t.Fatal(err)
	}
	r := e.run("", "status")
	if r.code != ExitFailure || !strings.Contains(r.stdout, "error:   etcd: no quorum\n") || !strings.Contains(r.stderr, "the engine reports an error: etcd: no quorum") {
		t.Errorf("status with an error: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSSHForgetAndImages(t *testing.T) {
	e := newEnv(t)
	if err := e.st.Pin("10.69.0.5", []byte("key")); err != nil {
		t.Fatal(err)
	}
	e.ok("", "ssh", "forget", "10.69.0.5")
	if _, found, _ := e.st.Lookup("10.69.0.5"); found {
		t.Error("host key still pinned")
	}
	e.fails(ExitNotFound, "", "ssh", "forget", "10.69.0.5")
	e.fails(ExitInvalid, "", "ssh", "forget", "node-5")

	if out := e.ok("", "images"); !strings.Contains(out, "pause:") || !strings.Contains(out, "coredns:") {
		t.Errorf("images: %q", out)
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"clustr"}, ExitInvalid, `unknown command "clustr"`},
		{"unknown subcommand", []string{"cluster", "gte"}, ExitInvalid, "did you mean get?"},
		{"unknown flag", []string{"cluster", "get", "--bogus"}, ExitInvalid, "unknown flag: --bogus"},
		{"bad output format", []string{"constraints", "show", "-o", "xml"}, ExitInvalid, `unknown output format "xml"`},
		{"missing argument", []string{"cluster", "set"}, ExitInvalid, "takes 1 argument(s), got 0"},
		{"unknown CA", []string{"ca", "get", "ca-server"}, ExitInvalid, "the CAs are server, etcd-peer, etcd-client, kubernetes, kubernetes-aggregation, kubernetes-webhook"},
		{"CA not copied yet", []string{"ca", "get", "server"}, ExitNotFound, "run ckecli vault init"},
		{"ttl too long", []string{"kubernetes", "issue", "--ttl", "1000h", "--server", "https://x"}, ExitInvalid, "--ttl 1000h: between 1m and 720h"},
		{"etcd user name", []string{"etcd", "issue", "a/b"}, ExitInvalid, `NAME "a/b"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if stderr := e.fails(tt.code, "", tt.args...); !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
	// A group without a subcommand prints its help.
	if out := e.ok("", "cluster"); !strings.Contains(out, "Available Commands:") {
		t.Errorf("ckecli cluster: %q", out)
	}
}

func TestEtcdConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	os.WriteFile(path, []byte("etcd:\n  endpoints: [https://10.69.0.3:2379]\n  prefix: /neco/\n  tls-cert-file: /etc/neco/etcd-root.crt\n  tls-key-file: /etc/neco/etcd-root.key\n"), 0o600)
	for _, tt := range []struct {
		name      string
		args      []string
		endpoints string
		prefix    string
		cert      string
		err       string
	}{
		{"file", []string{"--config", path}, "https://10.69.0.3:2379", "/cke/", "/etc/neco/etcd-root.crt", ""},
		{"flags win", []string{"--config", path, "--etcd-endpoints", "https://a:2379,https://b:2379", "--etcd-prefix", "/x/"}, "https://a:2379,https://b:2379", "/x/", "/etc/neco/etcd-root.crt", ""},
		{"flags only", []string{"--config", "", "--etcd-endpoints", "http://a:2379"}, "http://a:2379", "/cke/", "", ""},
		{"missing file", []string{"--config", path + ".missing"}, "", "", "", "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := &options{}
			fs := pflag.NewFlagSet("ckecli", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := o.etcdConfig()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cfg.Endpoints, ",") != tt.endpoints || cfg.Prefix != tt.prefix || cfg.TLSCertFile != tt.cert {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	e := newEnv(t)
	e.ok("", "resource", "set", e.file("r.yml", resourcesYAML))
	e.ok("", "cluster", "set", e.file("c.yml", clusterYAML))
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"CA names", []string{"ca", "get", ""}, caNames()},
		{"constraint names", []string{"constraints", "set", ""}, []string{"control-plane-count\t", "minimum-workers-rate\t", "maximum-workers\t"}},
		{"resource keys from etcd", []string{"resource", "delete", ""}, []string{"Namespace/monitoring", "ClusterRole/reader", "ConfigMap/monitoring/settings"}},
		{"node addresses from cluster.yml", []string{"ssh", "forget", ""}, []string{"10.69.0.4", "10.69.0.5"}},
		{"output formats", []string{"status", "-o", ""}, []string{"text", "json", "yaml"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := e.ok("", append([]string{cobra.ShellCompRequestCmd}, tt.args...)...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("completion lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out := e.ok("", "completion", "bash"); !strings.Contains(out, "__start_ckecli") {
		t.Errorf("bash completion: %.200s", out)
	}
}
