package netboottest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/osimage"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/netboot"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
	"github.com/openneco/neco/pkg/testutil"
)

// Firmware and boot files from Debian packages (make setup).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	ipxeEFI  = "/usr/lib/ipxe/ipxe.efi"
)

// bootTimeout bounds the whole boot under TCG (measured: see
// docs/network-boot.md).
const bootTimeout = 8 * time.Minute

// debianKernel returns the newest installed Debian kernel and its version.
func debianKernel(t *testing.T) (string, string) {
	t.Helper()
	k, ver, err := osimage.Kernel()
	if err != nil {
		testutil.Missing(t, "%v", err)
	}
	testutil.RequireFile(t, filepath.Join("/lib/modules", ver, "modules.dep"))
	return k, ver
}

// TestUEFIHTTPBoot boots one QEMU VM (TCG, Debian's OVMF, HTTP boot
// first) on a bridge in a namespace with sabakan: DHCP → ipxe.efi → the
// iPXE script → kernel and initrd of an image uploaded to sabakan → the
// initramfs fetches its rendered Ignition, which must be the one sabakan
// renders for that machine.
func TestUEFIHTTPBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG (a few minutes)")
	}
	e := newNetenv(t)
	bins := testutil.RequireCommands(t, "qemu-system-x86_64", "busybox")
	for _, f := range []string{ovmfCode, ovmfVars, ipxeEFI} {
		testutil.RequireFile(t, f)
	}
	if err := osimage.CheckStatic(bins[1]); err != nil {
		testutil.Missing(t, "%v", err)
	}
	kernel, kver := debianKernel(t)
	start := time.Now()

	// The rack-0 segment: a bridge with sabakan's address and the VM's tap.
	srv := e.ns("srv")
	e.in(srv, "ip", "link", "add", "br0", "type", "bridge")
	e.in(srv, "ip", "addr", "add", "10.69.0.3/26", "dev", "br0")
	e.in(srv, "ip", "link", "set", "br0", "up")
	e.in(srv, "ip", "tuntap", "add", "tap0", "mode", "tap")
	e.in(srv, "ip", "link", "set", "tap0", "master", "br0")
	e.in(srv, "ip", "link", "set", "tap0", "up")

	// sabakan: inventory, boot content, ignition, web API and DHCP.
	ctx := context.Background()
	client := etcdtest.Client(t)
	st, err := store.Open(ctx, client, store.Options{Hostname: "boot-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutIPAM(ctx, testIPAM()); err != nil {
		t.Fatal(err)
	}
	if err := st.PutDHCP(ctx, &sabakan.DHCPConfig{LeaseMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	rnd := make([]byte, 4)
	rand.Read(rnd)
	serial := "qemu-" + hex.EncodeToString(rnd)
	if _, err := st.Register(ctx, []sabakan.MachineSpec{{Serial: serial, Rack: 0, Role: "worker", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}}}); err != nil {
		t.Fatal(err)
	}
	advertise := "http://10.69.0.3:10080"
	cs, err := content.New(client, content.Options{Dir: t.TempDir(), AdvertiseURL: advertise, Audit: st.AuditOp})
	if err != nil {
		t.Fatal(err)
	}
	ign := ignition.NewStore(client, st.AuditOp)
	api := &bootapi.API{Content: cs, Ignitions: ign, Machines: st, URLs: ignition.URLs{HTTP: advertise}, IPXEEFI: ipxeEFI}
	ws := web.New(web.Config{Store: st})
	ws.RegisterBoot(api)
	serveIn(t, srv, "10.69.0.3:10080", ws.Handler())

	startDHCPWith(t, srv, client, advertise, netboot.Config(st))

	// The image: a Debian kernel and a busybox initramfs built here.
	initrd, err := osimage.Initramfs(bins[1], filepath.Join("/lib/modules", kver),
		map[string]string{"init": initScript, "udhcpc.script": udhcpcScript})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if err := content.WriteImage(&img, kb, initrd); err != nil {
		t.Fatal(err)
	}
	if err := cs.PutImage(ctx, content.OSCoreOS, "debian-1", &img); err != nil {
		t.Fatal(err)
	}
	if err := cs.PutKernelParams(ctx, content.OSCoreOS, "console=ttyS0 panic=-1 quiet"); err != nil {
		t.Fatal(err)
	}
	tmpl := &ignition.Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"/etc/neco-boot","contents":{"source":"data:,booted%20{{ .Spec.Serial }}%20at%20{{ index .Spec.IPv4 0 }}"}}]}}`)}
	if err := ign.Put(ctx, "worker", "1.0.0", tmpl); err != nil {
		t.Fatal(err)
	}
	m, err := st.Machine(ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ign.RenderFor(ctx, m, "1.0.0", ignition.URLs{HTTP: advertise})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sabakan ready in %s; booting %s", time.Since(start).Round(time.Millisecond), serial)

	// The VM.
	vars := filepath.Join(t.TempDir(), "vars.fd")
	vb, _ := os.ReadFile(ovmfVars)
	os.WriteFile(vars, vb, 0o644)
	vm := e.start(srv, "qemu-system-x86_64",
		"-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:4e:42:01,romfile=,bootindex=1",
		"-smbios", "type=1,serial="+serial,
		"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
		"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
	)
	bootStart := time.Now()
	deadline := time.After(bootTimeout)
	// found reports whether the console holds the Ignition, checking it.
	found := func() bool {
		out := vm.out.String()
		i := strings.Index(out, markerBegin)
		if i < 0 {
			return false
		}
		j := strings.Index(out[i:], markerEnd)
		if j < 0 {
			return false
		}
		got := strings.TrimSpace(out[i+len(markerBegin) : i+j])
		if got != string(want) {
			t.Fatalf("the VM fetched\n%s\nwant\n%s", got, want)
		}
		t.Logf("UEFI HTTP boot to Ignition took %s (TCG)", time.Since(bootStart).Round(time.Second))
		return true
	}
	for !found() {
		select {
		case <-deadline:
			t.Fatalf("no Ignition on the console after %s; console:\n%s", bootTimeout, tail(vm.out.String(), 4000))
		case <-vm.exited:
			if !found() {
				t.Fatalf("QEMU exited (%v) before printing the Ignition; console:\n%s", vm.err, tail(vm.out.String(), 4000))
			}
			return
		case <-time.After(time.Second):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
