package worker_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
	"github.com/openneco/neco/pkg/worker"
)

// startSabakan serves sabakan's REST API with its boot content on the
// test's etcd namespace.
func startSabakan(t *testing.T) *client.Client {
	t.Helper()
	ec := etcdtest.Client(t)
	st, err := store.Open(context.Background(), ec, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := web.New(web.Config{Store: st, Version: "test"})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Start()
	t.Cleanup(ts.Close)
	cs, err := content.New(ec, content.Options{Dir: t.TempDir(), AdvertiseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterBoot(&bootapi.API{Content: cs, Ignitions: ignition.NewStore(ec, st.AuditOp), Machines: st})
	ts.Config.Handler = srv.Handler()
	c, err := client.New(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// shareDir lays out /usr/share/neco as the package does, plus an OS image
// and an asset.
func shareDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-R", "../../etc/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("cp", "-R", "../../ignitions", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.MkdirAll(filepath.Join(dir, "images/coreos"), 0o755)
	f, err := os.Create(filepath.Join(dir, "images/coreos/3000.1.0.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := content.WriteImage(f, []byte("KERNEL"), []byte("INITRD")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.MkdirAll(filepath.Join(dir, "assets"), 0o755)
	os.WriteFile(filepath.Join(dir, "assets", "bgp-node-agent"), []byte("agent binary"), 0o644)
	return dir
}

func TestSabakanUploader(t *testing.T) {
	ctx := context.Background()
	sc := startSabakan(t)
	dir := shareDir(t)
	c, err := worker.ScanContents(dir, "2025.03.10-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Images) != 1 || len(c.Assets) != 1 || len(c.Ignitions) == 0 || c.DHCP == "" {
		t.Fatalf("scanned %+v", c)
	}
	c.Meta = map[string]any{worker.MetaRegistries: []any{"10.0.0.1:5000"}, worker.MetaRegistryCA: "ca", worker.MetaCKESSHKey: "ssh-ed25519 AAAA cke"}
	up := worker.SabakanUploader{Client: sc}
	for i := range 2 { // the second run finds everything there
		if err := up.Upload(ctx, c); err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
	}
	imgs, err := sc.Images(ctx, "coreos")
	if err != nil || len(imgs) != 1 || imgs[0].ID != "3000.1.0" {
		t.Errorf("images = %+v, %v", imgs, err)
	}
	assets, err := sc.Assets(ctx)
	if err != nil || !slices.Contains(assets, "bgp-node-agent") {
		t.Errorf("assets = %v, %v", assets, err)
	}
	for _, ign := range c.Ignitions {
		ids, err := sc.IgnitionIDs(ctx, ign.Role)
		if err != nil || !slices.Contains(ids, "2025.03.10-2") {
			t.Errorf("Ignition ids of %s = %v, %v", ign.Role, ids, err)
		}
	}
	dhcp, err := sc.DHCP(ctx)
	if err != nil || dhcp.LeaseMinutes != 60 {
		t.Errorf("DHCP = %+v, %v", dhcp, err)
	}
}
