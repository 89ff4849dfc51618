package cdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/necocli"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// run runs the neco command with a config file for the test's namespace
// and returns stdout and the exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	data := "etcd:\n  endpoints: [" + etcdtest.Endpoint() + "]\n  prefix: " + t.Name() + "/\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	root := necocli.NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetArgs(append([]string{"--config", cfg}, args...))
	err := root.ExecuteContext(context.Background())
	if err != nil {
		out.WriteString("error: " + err.Error())
	}
	return out.String(), cli.Code(err)
}

func TestConfigCommands(t *testing.T) {
	st := storage.New(etcdtest.Client(t))
	ctx := context.Background()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"set env", []string{"config", "set", "env", "staging"}, 0, ""},
		{"get env", []string{"config", "get", "env"}, 0, "staging\n"},
		{"bad value", []string{"config", "set", "env", "production"}, cli.ExitUsage, `env "production": want none, test, dev, staging or prod`},
		{"bad duration", []string{"config", "set", "worker-timeout", "forever"}, cli.ExitUsage, "not a duration"},
		{"bad cron", []string{"config", "set", "release-time", "* 25 * * *"}, cli.ExitUsage, "hour field"},
		{"unknown key", []string{"config", "set", "colour", "red"}, cli.ExitUsage, `unknown key "colour"`},
		{"unknown key get", []string{"config", "get", "colour"}, cli.ExitUsage, "unknown config key"},
		{"missing value", []string{"config", "set", "env"}, cli.ExitUsage, "takes 2 argument(s)"},
		{"set token", []string{"config", "set", "github-token", "ghp_secret"}, 0, ""},
		{"list hides secrets", []string{"config", "get"}, 0, "(hidden; --show-secrets)"},
		{"get token by name", []string{"config", "get", "github-token"}, 0, "ghp_secret\n"},
		{"unset", []string{"config", "unset", "env"}, 0, ""},
		{"default after unset", []string{"config", "get", "env"}, 0, "none\n"},
	}
	for _, tt := range tests {
		out, code := run(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%s: neco %v = %d %q; want %d and output containing %q", tt.name, tt.args, code, out, tt.code, tt.want)
		}
	}
	// Rejected values were never stored.
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.ConfigValues["colour"]; ok || snap.ConfigValues[neco.KeyWorkerTimeout] != "" || len(snap.ConfigValues) != 1 {
		t.Errorf("stored config = %v, want only github-token", snap.ConfigValues)
	}
	out, code := run(t, "config", "get", "-o", "json")
	var entries []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != len(neco.ConfigKeys) {
		t.Errorf("config get -o json = %d %s", code, out)
	}
}

func TestStatusAndRecover(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Client(t)
	st := storage.New(c)

	out, code := run(t, "status")
	if code != 0 || !strings.Contains(out, "update request:  (none)") {
		t.Errorf("empty status = %d %q", code, out)
	}
	if out, code := run(t, "recover"); code != cli.ExitFailure || !strings.Contains(out, "no update request") {
		t.Errorf("recover with nothing = %d %q", code, out)
	}

	for _, lrn := range []int{0, 1, 2} {
		st.RegisterBootServer(ctx, lrn, "")
	}
	snap, _ := st.Snapshot(ctx)
	req := &neco.UpdateRequest{ID: snap.Revision, Version: "2025.03.10-2", Servers: []int{0, 1, 2}, StartedAt: time.Now()}
	g := storage.PutRequest(snap, req)
	if _, err := etcdutil.Commit(c.Txn(ctx).If(g.Cmps...).Then(g.Ops...)); err != nil {
		t.Fatal(err)
	}
	snap, _ = st.Snapshot(ctx)
	st.PutStatus(ctx, snap, 1, &neco.UpdateStatus{RequestID: req.ID, Version: req.Version, Step: 3, StepName: "sabakan-contents", Cond: neco.CondAborted, Message: "upload failed: disk full"})
	if out, code := run(t, "recover"); code != cli.ExitFailure || !strings.Contains(out, "not stopped") {
		t.Errorf("recover while running = %d %q", code, out)
	}
	snap, _ = st.Snapshot(ctx)
	g = storage.StopRequest(snap, "boot server 1 aborted at step 3 (sabakan-contents): upload failed: disk full")
	if _, err := etcdutil.Commit(c.Txn(ctx).If(g.Cmps...).Then(g.Ops...)); err != nil {
		t.Fatal(err)
	}

	out, code = run(t, "status")
	for _, want := range []string{"STOPPED: boot server 1 aborted", "neco recover", "sabakan-contents", "aborted", "upload failed: disk full", "not started"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _ = run(t, "status", "-o", "json")
	var js map[string]any
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if js["request"].(map[string]any)["stop"] != true || js["statuses"].(map[string]any)["1"].(map[string]any)["message"] != "upload failed: disk full" {
		t.Errorf("status json = %s", out)
	}

	out, code = run(t, "recover")
	if code != 0 || !strings.Contains(out, "cleared update") {
		t.Errorf("recover = %d %q", code, out)
	}
	snap, _ = st.Snapshot(ctx)
	if snap.Request != nil || len(snap.Statuses) != 0 {
		t.Errorf("after recover: %+v", snap)
	}
}
