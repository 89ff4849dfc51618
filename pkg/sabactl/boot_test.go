package sabactl

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

// newBootEnv is newEnv with the network boot API registered.
func newBootEnv(t *testing.T) *env {
	client := etcdtest.Client(t)
	st, err := store.Open(context.Background(), client, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := web.New(web.Config{Store: st, Version: "1.0"})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Start()
	t.Cleanup(ts.Close)
	cs, err := content.New(client, content.Options{Dir: t.TempDir(), AdvertiseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterBoot(&bootapi.API{Content: cs, Ignitions: ignition.NewStore(client, st.AuditOp), Machines: st})
	ts.Config.Handler = srv.Handler()
	return &env{t: t, server: ts.URL, tlsURL: ts.URL, dir: t.TempDir(), srvStore: st}
}

func TestBootCommands(t *testing.T) {
	e := newBootEnv(t)
	kernel := e.file("vmlinuz", strings.Repeat("K", 1000))
	initrd := e.file("initrd.gz", strings.Repeat("I", 3000))
	asset := e.file("agent.tar.gz", "payload")
	tree := filepath.Join("..", "sabakan", "ignition", "testdata", "tree", "site.yml")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"images", "upload", "1.0", kernel, initrd}, 0, ""},
		{[]string{"images", "upload", "1.0", kernel, initrd}, cli.ExitConflict, "exists"},
		{[]string{"images", "upload", "2.0", kernel, "/nonexistent"}, cli.ExitFailure, "no such file"},
		{[]string{"images", "index", "-o", "json"}, 0, `"id": "1.0"`},
		{[]string{"images", "index", "-o", "simple"}, 0, "1.0"},
		{[]string{"images", "delete", "9.9"}, cli.ExitNotFound, ""},
		{[]string{"assets", "upload", "--meta", "mode=0755", "agent", asset}, 0, "created asset agent, id 1"},
		{[]string{"assets", "upload", "agent", asset}, 0, "replaced asset agent, id 2"},
		{[]string{"assets", "upload", "../x", asset}, cli.ExitClient, "invalid asset name"},
		{[]string{"assets", "index"}, 0, `"agent"`},
		{[]string{"assets", "info", "agent"}, 0, "application/gzip"},
		{[]string{"assets", "info", "-o", "json", "agent"}, 0, `"sha256": "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"`},
		{[]string{"assets", "delete", "agent"}, 0, ""},
		{[]string{"assets", "info", "agent"}, cli.ExitNotFound, ""},
		{[]string{"kernel-params", "set", "console=ttyS0", "quiet"}, 0, ""},
		{[]string{"kernel-params", "get"}, 0, "console=ttyS0 quiet"},
		{[]string{"ignitions", "get", "worker"}, 0, "null\n"}, // no templates yet: the reference's answer
		{[]string{"ignitions", "get", "bad_"}, cli.ExitClient, "invalid role"},
		{[]string{"ignitions", "set", "-f", tree, "worker", "notsemver"}, cli.ExitClient, "want a version"},
		{[]string{"ignitions", "set", "-f", tree, "--meta", "version=1", "worker", "1.0.0"}, 0, ""},
		{[]string{"ignitions", "set", "-f", tree, "worker", "1.0.0"}, cli.ExitConflict, ""},
		{[]string{"ignitions", "set", "-f", tree, "--dry-run", "worker", "2"}, 0, `"version": "3.4"`},
		{[]string{"ignitions", "get", "worker"}, 0, `"1.0.0"`},
		{[]string{"ignitions", "get", "worker", "1.0.0"}, 0, `"version": "1"`},
		{[]string{"ignitions", "set", "--json", "-f", "-", "worker", "1.1"}, 0, ""},
		{[]string{"ignitions", "set", "-f", tree, "worker", "1.0.0-rc.1"}, 0, ""},
		{[]string{"ignitions", "set", "-f", tree, "worker", "0.10"}, 0, ""},
		{[]string{"ignitions", "get", "worker"}, 0, "[\n  \"0.10\",\n  \"1.0.0-rc.1\",\n  \"1.0.0\",\n  \"1.1\"\n]\n"},
		{[]string{"ignitions", "delete", "worker", "1.1"}, 0, ""},
		{[]string{"ignitions", "set", "worker", "3"}, cli.ExitUsage, "needs -f"},
	} {
		stdin := ""
		if tt.args[0] == "ignitions" && slices.Contains(tt.args, "--json") {
			stdin = `{"version":"2.3","template":{"storage":{"files":[{"filesystem":"root","path":"/x","contents":{"source":"data:,{{.Serial}}"}}]}}}`
		}
		out, code := e.run(stdin, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("sabactl %s: exit %d, output %q; want exit %d with %q", strings.Join(tt.args, " "), code, out, tt.code, tt.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine("asset x", 50<<20, 100<<20, 5e9)
	for _, want := range []string{"asset x [", "50%", "10.0 MiB/s", "ETA 5s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	// Not a terminal: no wrapping.
	f, _ := os.CreateTemp(t.TempDir(), "x")
	r := strings.NewReader("abc")
	if withProgress(r, f, "x", 3) != r {
		t.Error("progress drawn into a regular file")
	}
}
