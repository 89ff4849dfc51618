//go:build dctest

package dctest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/necodc"
	"github.com/openneco/neco/pkg/vdc/proc"
)

// TestFunctions runs operator procedures on the bootstrapped data center:
//
//   - a boot server's disk is lost and the server replaced, as
//     docs/bootstrap.md tells: neco leave refuses while the server is up
//     (fewer than three would remain), accepts once it is down; the machine
//     is reinstalled (package purged, state wiped, package installed) and
//     joins again with a ticket from neco vault issue-join-token; the
//     updater includes it, its worker runs the update steps (sabakan's
//     certificate included) and everything is back: three etcd members,
//     Vault unsealed, sabakan healthy;
//   - a machine is retired through its life-cycle: retiring, its disk
//     encryption keys deleted (retired refused while it has some), retired,
//     removed from sabakan.
func TestFunctions(t *testing.T) {
	d := necoDC(t)
	t.Run("replace a boot server", func(t *testing.T) { replaceBootServer(t, d) })
	t.Run("retire a machine", func(t *testing.T) { retireMachine(t, d) })
}

func replaceBootServer(t *testing.T, d *necodc.DC) {
	ctx := context.Background()
	boots := d.BootServers()
	lrns := d.LRNs()
	victim, lrn := boots[len(boots)-1], lrns[len(lrns)-1]
	op := boots[0]
	h := hosts{t, d.In, 2 * time.Minute}
	run, must := h.run, h.must
	lrnArg := strconv.Itoa(lrn)
	members := func() int {
		out, _ := run(op, "etcdctl", "--endpoints", "https://"+d.Plan.Hosts[op].Node0.String()+":2379", "--cacert", "/etc/neco/ca-server.crt",
			"--cert", "/etc/neco/etcd-root.crt", "--key", "/etc/neco/etcd-root.key", "member", "list")
		return strings.Count(out, ", started, ") + strings.Count(out, ", unstarted, ")
	}

	// Up, with three members: refused, and nothing changes.
	out, err := run(op, "neco", "leave", lrnArg)
	if err == nil || !strings.Contains(out, "join a replacement first") {
		t.Fatalf("neco leave of a running boot server of three: %v\n%s", err, out)
	}
	if s, err := d.Status(ctx, op); err != nil || !slices.Contains(s.BootServers, lrn) {
		t.Fatalf("a refused leave changed the registrations: %v %+v", err, s)
	}

	// The disk is lost: power off, then leave.
	start := time.Now()
	if err := d.In.Stop(ctx, victim, true); err != nil {
		t.Fatal(err)
	}
	t.Log(must(op, "neco", "leave", lrnArg))
	if n := members(); n != len(boots)-1 {
		t.Errorf("%d etcd members after %s left, want %d", n, victim, len(boots)-1)
	}
	s, err := d.Status(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(s.BootServers, lrn) {
		t.Errorf("boot server %d still registered: %v", lrn, s.BootServers)
	}
	// The updater drops it from the request; the others complete it.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := proc.WaitFor(wctx, time.Second, func() bool {
		s, err := d.Status(wctx, op)
		if err != nil || s.Request == nil || slices.Contains(s.Request.Servers, lrn) {
			return false
		}
		ok, _ := s.Completed(s.Request.Version)
		return ok
	}); err != nil {
		t.Fatalf("the update request was not reconfigured without boot server %d: %v", lrn, err)
	}

	// Reinstall: the machine boots with its old disk; its services are
	// stopped, the package purged and the state wiped, the package
	// installed again.
	if err := d.In.Start(ctx, victim); err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer bcancel()
	if err := d.In.WaitBootedHost(bctx, victim); err != nil {
		t.Fatal(err)
	}
	wipe := `systemctl disable --now etcd vault sabakan neco-updater neco-worker node-health-agent sabakan-state-setter cke 2>/dev/null
dpkg --purge neco
rm -rf /etc/neco /var/lib/neco /var/lib/etcd /etc/vault /etc/sabakan /var/lib/sabakan /etc/default/node-health-agent \
	/etc/systemd/system/etcd.service /etc/systemd/system/vault.service
systemctl daemon-reload`
	must(victim, "sh", "-c", wipe)
	deb := filepath.Base(shared.build[necoV1].Deb)
	must(victim, "dpkg", "-i", necodc.ShareDir+"/"+deb)
	if out, err := run(victim, "systemctl", "is-active", "etcd"); err == nil {
		t.Fatalf("etcd runs on the reinstalled %s: %s", victim, out)
	}

	// Join with a ticket.
	ticket := must(op, "neco", "vault", "issue-join-token", lrnArg)
	ticketFile := filepath.Join(d.Share, "join-"+lrnArg+".json")
	if err := os.WriteFile(ticketFile, []byte(ticket), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ticketFile)
	t.Log(must(victim, "neco", "join", "--ticket", necodc.ShareDir+"/join-"+lrnArg+".json", lrnArg))
	if n := members(); n != len(boots) {
		t.Errorf("%d etcd members after %s joined, want %d", n, victim, len(boots))
	}
	// The updater includes it again; its worker runs the steps, sabakan's
	// certificate first.
	wctx2, cancel2 := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel2()
	if err := proc.WaitFor(wctx2, time.Second, func() bool {
		s, err := d.Status(wctx2, op)
		if err != nil || s.Request == nil || !slices.Contains(s.Request.Servers, lrn) {
			return false
		}
		ok, _ := s.Completed(s.Request.Version)
		return ok
	}); err != nil {
		s, _ := d.Status(ctx, op)
		t.Fatalf("the update request with boot server %d did not complete: %v\n%+v", lrn, err, s)
	}
	if h, err := run(victim, "curl", "-sf", "http://127.0.0.1:10080/health"); err != nil || !strings.Contains(h, "healthy") {
		t.Errorf("sabakan on the rejoined %s: %v %s", victim, err, h)
	}
	code, _ := run(victim, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "/etc/neco/ca-server.crt",
		"https://"+d.Plan.Hosts[victim].Node0.String()+":8200/v1/sys/health")
	if code != "200" && code != "429" {
		t.Errorf("vault on the rejoined %s: %s", victim, code)
	}
	// Its registry caught up: the worker pushed the release's images.
	if out, err := run(victim, "curl", "-sf", "--cacert", "/etc/neco/ca-server.crt", "-o", "/dev/null", "-w", "%{http_code}",
		"https://"+d.Plan.Hosts[victim].Node0.String()+":5000/v2/pause/manifests/3.10.2",
		"-H", "Accept: application/vnd.oci.image.manifest.v1+json"); err != nil || out != "200" {
		t.Errorf("the rejoined %s's registry does not serve pause:3.10.2: %v %s", victim, err, out)
	}
	if err := d.WaitStates(ctx, sabakan.StateHealthy, 2*time.Minute, victim); err != nil {
		t.Error(err)
	}
	took := time.Since(start)
	t.Logf("%s replaced (leave, reinstall, join, update steps) in %s", victim, took.Round(100*time.Millisecond))
	report(t, map[string]any{"replace_boot_server_s": took.Seconds()})
}

func retireMachine(t *testing.T, d *necodc.DC) {
	op := d.BootServers()[0]
	victim := d.Workers()[len(d.Workers())-2]
	serial := d.Plan.Hosts[victim].Serial
	h := hosts{t, d.In, time.Minute}
	run, must := h.run, h.must
	state := func() string { return strings.TrimSpace(must(op, "sabactl", "machines", "get-state", serial)) }

	// The machine keeps its disk key in sabakan (over HTTPS, as nodes do).
	key := "/api/v1/crypts/" + serial + "/pci-0000:00:1f.2-ata-1"
	must(victim, "sh", "-c", "head -c 32 /dev/urandom | curl -skf -X PUT --data-binary @- https://"+d.Plan.Hosts[op].Node0.String()+":10443"+key)
	if got := state(); got != string(sabakan.StateHealthy) {
		t.Fatalf("%s is %s before retiring", victim, got)
	}
	must(op, "sabactl", "machines", "set-state", serial, "retiring")
	// Not retired while it has keys.
	if out, err := run(op, "sabactl", "machines", "set-state", serial, "retired"); err == nil || !strings.Contains(out, "key") {
		t.Fatalf("retired with a disk key still stored: %v\n%s", err, out)
	}
	// The state setter leaves a retiring machine alone.
	time.Sleep(12 * time.Second)
	if got := state(); got != "retiring" {
		t.Errorf("%s is %s, want retiring (the state setter must not touch it)", victim, got)
	}
	deleted := must(op, "sabactl", "crypts", "delete", "--force", "--insecure", serial)
	if !strings.Contains(deleted, "pci-0000:00:1f.2-ata-1") {
		t.Errorf("deleted keys: %q", deleted)
	}
	if out, err := run(victim, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://"+d.Plan.Hosts[op].Node0.String()+":10443"+key); err != nil || out != "404" {
		t.Errorf("the key is still served: %v %s", err, out)
	}
	must(op, "sabactl", "machines", "set-state", serial, "retired")
	if got := state(); got != "retired" {
		t.Errorf("%s is %s, want retired", victim, got)
	}
	must(op, "sabactl", "machines", "remove", serial)
	if out, err := run(op, "sabactl", "machines", "get-state", serial); err == nil {
		t.Errorf("%s still in sabakan: %s", victim, out)
	}
	if logs := must(op, "sabactl", "logs"); !strings.Contains(logs, serial) {
		t.Errorf("the audit log does not mention %s", serial)
	}
}
