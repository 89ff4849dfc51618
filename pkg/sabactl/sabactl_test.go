package sabactl

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

type env struct {
	t        *testing.T
	server   string
	tlsURL   string
	dir      string
	srvStore *store.Store
}

func newEnv(t *testing.T) *env {
	st, err := store.Open(context.Background(), etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := web.New(web.Config{Store: st, Version: "1.0"})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	tlsTS := httptest.NewTLSServer(srv.TLSHandler())
	t.Cleanup(tlsTS.Close)
	return &env{t: t, server: ts.URL, tlsURL: tlsTS.URL, dir: t.TempDir(), srvStore: st}
}

// run runs sabactl with args and returns its output and exit code.
func (e *env) run(stdin string, args ...string) (string, int) {
	e.t.Helper()
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--server", e.server, "--tls-server", e.tlsURL, "--insecure"}, args...))
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.WithCode(cli.ExitUsage, err) })
	err := root.ExecuteContext(context.Background())
	if err != nil {
		return out.String() + err.Error(), cli.Code(err)
	}
	return out.String(), 0
}

func (e *env) file(name, content string) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

const ipam = `{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/16","node-ipv4-range-size":6,"node-ipv4-range-mask":26,
"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-offset":"0.0.1.0",
"bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`

func TestSabactl(t *testing.T) {
	e := newEnv(t)
	machines := e.file("machines.json", `[
		{"serial":"boot1","rack":1,"role":"boot","labels":{"product":"R630"},"bmc":{"type":"iDRAC-9"}},
		{"serial":"cs1","rack":1,"role":"cs","labels":{"product":"R630"},"bmc":{"type":"iDRAC-9"}},
		{"serial":"ss1","rack":2,"role":"ss","bmc":{"type":"IPMI-2.0"},"retire-date":"2031-01-01T00:00:00Z"}]`)
	steps := []struct {
		args     []string
		stdin    string
		code     int
		contains string
	}{
		{[]string{"ipam", "get"}, "", cli.ExitNotFound, "not set"},
		{[]string{"machines", "create", "-f", machines}, "", cli.ExitConflict, "IPAM"},
		{[]string{"ipam", "set", "-f", "-"}, ipam, 0, ""},
		{[]string{"ipam", "set"}, "", cli.ExitUsage, "-f FILE"},
		{[]string{"ipam", "set", "-f", "-"}, `{"max-nodes-in-rack":0}`, cli.ExitClient, "ipam"},
		{[]string{"ipam", "set", "-f", "/nonexistent"}, "", cli.ExitFailure, "no such file"},
		{[]string{"ipam", "get"}, "", 0, `"node-ipv4-pool": "10.69.0.0/16"`},
		{[]string{"dhcp", "set", "-f", "-"}, `{"lease-minutes":30}`, 0, ""},
		{[]string{"dhcp", "get"}, "", 0, `"lease-minutes": 30`},
		{[]string{"machines", "create", "-f", machines}, "", 0, ""},
		{[]string{"machines", "create", "-f", machines}, "", cli.ExitConflict, "already registered"},
		{[]string{"ipam", "set", "-f", "-"}, ipam, cli.ExitConflict, "cannot change"},
		{[]string{"machines", "create", "-f", "-"}, `[{"serial":"x"}]`, cli.ExitFailure, "invalid role"},
		{[]string{"machines", "get", "--rack", "1", "-o", "simple"}, "", 0, "Serial Rack Role State         IPv4        BMC"},
		{[]string{"machines", "get", "--without-role", "boot", "--labels", "product=R630"}, "", 0, `"serial": "cs1"`},
		{[]string{"machines", "get", "--rack", "9"}, "", cli.ExitNotFound, "no machine matches"},
		{[]string{"machines", "get", "--state", "sleepy"}, "", cli.ExitClient, "invalid state"},
		{[]string{"machines", "get", "--role", "cs", "--without-role", "ss"}, "", cli.ExitClient, "cannot be used together"},
		{[]string{"machines", "get", "-o", "yaml"}, "", cli.ExitUsage, "unknown output format"},
		{[]string{"machines", "get-state", "cs1"}, "", 0, "uninitialized\n"},
		{[]string{"machines", "set-state", "cs1", "HEALTHY"}, "", 0, ""},
		{[]string{"machines", "set-state", "cs1", "retired"}, "", cli.ExitConflict, "not allowed"},
		{[]string{"machines", "set-state", "nobody", "healthy"}, "", cli.ExitNotFound, "nobody"},
		{[]string{"machines", "set-state", "cs1"}, "", cli.ExitUsage, "takes 2 argument"},
		{[]string{"machines", "set-label", "cs1", "os", "1855.4.0"}, "", 0, ""},
		{[]string{"machines", "remove-label", "cs1", "nothere"}, "", cli.ExitNotFound, "nothere"},
		{[]string{"machines", "set-retire-date", "cs1", "2030-04-05"}, "", 0, ""},
		{[]string{"machines", "set-retire-date", "cs1", "tomorrow"}, "", cli.ExitUsage, "YYYY-MM-DD"},
		{[]string{"machines", "get-label", "cs1", "os"}, "", 0, "1855.4.0\n"},
		{[]string{"machines", "get-label", "cs1", "nothere"}, "", cli.ExitNotFound, "no label"},
		{[]string{"machines", "get-label", "nobody", "os"}, "", cli.ExitNotFound, "nobody"},
		{[]string{"machines", "remove", "cs1"}, "", cli.ExitConflict, "retired"},
		{[]string{"crypts", "delete", "cs1"}, "", cli.ExitUsage, "--force"},
		{[]string{"crypts", "delete", "--force", "cs1"}, "", cli.ExitConflict, "retiring"},
		{[]string{"machines", "set-state", "cs1", "retiring"}, "", 0, ""},
		{[]string{"crypts", "delete", "--force", "cs1"}, "", 0, ""},
		{[]string{"machines", "set-state", "cs1", "retired"}, "", 0, ""},
		{[]string{"machines", "remove", "cs1"}, "", 0, ""},
		{[]string{"logs", "--json"}, "", 0, `"action":"delete"`},
		{[]string{"logs"}, "", 0, "@127.0.0.1 machines/cs1 set-state detail:uninitialized -> hea\n"},
		{[]string{"logs", "--json"}, "", 0, `"detail":"uninitialized -> healthy"`},
		// The reference's words: put-label, delete-label, register without an instance.
		{[]string{"logs"}, "", 0, "@127.0.0.1 machines/cs1 put-label detail:os/1855.4.0\n"},
		{[]string{"logs", "--json"}, "", 0, `"category":"machines","instance":"","action":"register"`},
		{[]string{"logs", "2020-01-01"}, "", cli.ExitUsage, "YYYYMMDD"},
		{[]string{"logs", "20200101"}, "", 0, ""},
		{[]string{"version"}, "", 0, "\n"},
		{[]string{"nosuchcommand"}, "", cli.ExitFailure, "unknown command"},
	}
	for _, s := range steps {
		out, code := e.run(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.contains) {
			t.Errorf("sabactl %s: exit %d, output %q; want exit %d containing %q", strings.Join(s.args, " "), code, out, s.code, s.contains)
		}
	}
	// The crypts key needed for the retire step was absent; check one with a key.
	if err := e.srvStore.PutCrypt(context.Background(), "ss1", "disk0", []byte("k")); err != nil {
		t.Fatal(err)
	}
	e.run("", "machines", "set-state", "ss1", "healthy")
	e.run("", "machines", "set-state", "ss1", "retiring")
	if out, code := e.run("", "crypts", "delete", "--force", "ss1"); code != 0 || out != "disk0\n" {
		t.Errorf("crypts delete: %d %q", code, out)
	}
	// -o simple is the reference's table, column for column.
	out, _ := e.run("", "machines", "get", "--rack", "1", "-o", "simple")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "boot1 1 boot uninitialized 10.69.0.195 iDRAC-9" {
		t.Errorf("-o simple: %q", out)
	}
	out, _ = e.run("", "machines", "get", "--serial", "ss1")
	var ms []sabakan.Machine
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 1 || ms[0].Status.State != sabakan.StateRetiring {
		t.Errorf("machines get JSON: %v %q", err, out)
	}
	// Registered without a retire date: the registration date, as the
	// reference's server answers (ss1 was given one).
	out, _ = e.run("", "machines", "get", "--serial", "boot1,ss1")
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 2 {
		t.Fatalf("machines get JSON: %v %q", err, out)
	}
	if b, s := ms[0].Spec, ms[1].Spec; !b.RetireDate.Equal(b.RegisterDate) || b.RegisterDate.IsZero() || s.RetireDate.Year() != 2031 {
		t.Errorf("retire dates: boot1 %s (registered %s), ss1 %s", b.RetireDate, b.RegisterDate, s.RetireDate)
	}
}

func TestUnreachableServer(t *testing.T) {
	root := NewRootCommand()
	root.SetArgs([]string{"--server", "http://127.0.0.1:1", "ipam", "get"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	err := root.Execute()
	if cli.Code(err) != cli.ExitFailure {
		t.Errorf("unreachable server: exit %d (%v), want 1", cli.Code(err), err)
	}
}

func TestCompletion(t *testing.T) {
	e := newEnv(t)
	e.run(ipam, "ipam", "set", "-f", "-")
	e.run(`[{"serial":"abc","role":"cs","bmc":{"type":"x"}}]`, "machines", "create", "-f", "-")
	out, _ := e.run("", "__complete", "machines", "set-state", "")
	if !strings.Contains(out, "abc") {
		t.Errorf("serial completion: %q", out)
	}
	out, _ = e.run("", "__complete", "machines", "set-state", "abc", "re")
	if !strings.Contains(out, "retiring") {
		t.Errorf("state completion: %q", out)
	}
	out, _ = e.run("", "completion", "bash")
	if !strings.Contains(out, "bash completion") {
		t.Errorf("bash completion script: %.100q", out)
	}
}
