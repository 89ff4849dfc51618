package cdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

// TestInitData runs neco init-data against a real sabakan API (inventory
// and boot content) on the embedded etcd, twice: the second run must be a
// no-op that succeeds.
func TestInitData(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := web.New(web.Config{Store: st, Hostname: "boot-0", Version: "test"})
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	cs, err := content.New(etcdtest.Client(t), content.Options{Dir: t.TempDir(), AdvertiseURL: url, Audit: st.AuditOp})
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterBoot(&bootapi.API{Content: cs, Ignitions: ignition.NewStore(etcdtest.Client(t), st.AuditOp), Machines: st})
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)

	dir := t.TempDir()
	write := func(rel string, data []byte) string {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ipam, _ := json.Marshal(sabakan.ReferenceIPAM())
	ipamFile := write("ipam.json", ipam)
	write("contents/dhcp.json", []byte(`{"lease-minutes": 30, "dns-servers": ["10.69.0.1"]}`))
	write("contents/assets/bgp-node-agent", []byte("#!/bin/sh\necho agent\n"))
	write("contents/images/coreos/1.0.tar", imageTar(t))
	write("contents/ignitions/roles/cs/site.yml", []byte("version: \"3.4\"\nsystemd:\n  - name: hello.service\n"))
	write("contents/ignitions/systemd/hello.service", []byte("[Service]\nExecStart=/bin/true\n"))

	args := []string{"init-data", "--sabakan-url", ts.URL, "--ipam", ipamFile, "--contents", filepath.Join(dir, "contents"), "--version", "2026.11.23-1"}
	for i := range 2 {
		if out, code := run(t, args...); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i+1, code, out)
		}
	}

	sc, err := client.New(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := sc.IPAM(ctx); err != nil || cfg.NodeIPv4Pool != "10.69.0.0/20" {
		t.Errorf("IPAM = %+v, %v", cfg, err)
	}
	if cfg, err := sc.DHCP(ctx); err != nil || cfg.LeaseMinutes != 30 {
		t.Errorf("DHCP = %+v, %v", cfg, err)
	}
	if names, err := sc.Assets(ctx); err != nil || len(names) != 1 || names[0] != "bgp-node-agent" {
		t.Errorf("assets = %v, %v", names, err)
	}
	if ids, err := sc.IgnitionIDs(ctx, "cs"); err != nil || len(ids) != 1 || ids[0] != "2026.11.23-1" {
		t.Errorf("ignition ids of cs = %v, %v", ids, err)
	}

	// A different IPAM once machines exist is refused with a conflict.
	if err := sc.Register(ctx, []sabakan.MachineSpec{{Serial: "m1", Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}}}); err != nil {
		t.Fatal(err)
	}
	other := bytes.Replace(ipam, []byte(`"max-nodes-in-rack":28`), []byte(`"max-nodes-in-rack":20`), 1)
	otherFile := write("other.json", other)
	if out, code := run(t, "init-data", "--sabakan-url", ts.URL, "--ipam", otherFile); code != cli.ExitFailure {
		t.Errorf("changing IPAM with machines registered: exit %d (%s), want 1", code, out)
	}
	if out, code := run(t, "init-data", "--sabakan-url", ts.URL); code != cli.ExitUsage {
		t.Errorf("nothing to upload: exit %d (%s), want 2", code, out)
	}
}

func imageTar(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := content.WriteImage(&buf, []byte("fake kernel"), []byte("fake initrd.gz")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
