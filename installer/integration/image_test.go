package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/installer"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	version  = "0.0.1-installertest"
	// epoch is SOURCE_DATE_EPOCH of the test's builds.
	epoch = 1764547200 // 2025-12-01
	// A test key; the image must carry it for the operator.
	testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2dZr8lYwX0pUJ8sV1cT2o0f9s0n9aQ1Yp3oH8dZ9kE installer-test"
)

// daemons are the programs the test package ships: the CLI, the agent and
// the daemons whose units must be enabled and waiting for neco setup.
var daemons = []string{"neco", "bgp-node-agent", "neco-updater", "neco-worker", "sabakan", "sabakan-state-setter", "node-health-agent"}

// waiting are the package's units that must be enabled and not started
// before neco setup.
var waiting = []string{"neco-updater", "neco-worker", "sabakan", "sabakan-state-setter", "node-health-agent"}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../..")
}

// buildDeb builds a neco package of the daemons with debian/build.sh.
func buildDeb(t *testing.T, dir string) string {
	bin := filepath.Join(dir, "bin")
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X github.com/openneco/neco/pkg/version.Version=" + version, "-o", bin + "/"}
	for _, d := range daemons {
		args = append(args, "github.com/openneco/neco/cmd/"+d)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(repoRoot(t), "debian/build.sh"), version, bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("debian/build.sh: %v\n%s", err, out)
	}
	return filepath.Join(dir, "neco_"+version+"_amd64.deb")
}

func build(t *testing.T, deb, out string, keys string) *installer.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var log strings.Builder
	r, err := installer.Build(ctx, installer.Options{
		Tree: menu.TreeSpec(), CacheDir: rootfs.DefaultCacheDir, Deb: deb, Out: out,
		SSHKeys: []string{keys}, NTPServers: []string{"10.72.0.1"}, Epoch: time.Unix(epoch, 0), Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("built %s in %s (tree built: %v): %d MiB, %d MiB allocated\n%s", filepath.Base(out), r.Elapsed.Round(100*time.Millisecond),
		r.TreeBuilt, r.Size>>20, r.Allocated>>20, strings.TrimSpace(log.String()))
	return r
}

// TestImage builds the boot server's image twice, checks its structure and
// that the two builds are the same, and boots copies of it in QEMU with
// OVMF: a first boot with a seed, a second boot, and a first boot with a
// malformed seed.
func TestImage(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "debootstrap", "dpkg", "mkfs.ext4", "debugfs", "mkfs.vfat", "mcopy", "mtype", "sfdisk", "qemu-system-x86_64", "fakeroot", "dpkg-deb")
	testutil.RequireFile(t, ovmfCode)
	testutil.RequireFile(t, ovmfVars)
	dir := t.TempDir()
	deb := buildDeb(t, dir)
	img := filepath.Join(dir, "disk.img")
	r := build(t, deb, img, testKey)

	t.Run("structure", func(t *testing.T) { checkStructure(t, img, r) })
	t.Run("the same inputs give the same image", func(t *testing.T) {
		again := filepath.Join(dir, "again.img")
		r2 := build(t, deb, again, testKey)
		if r2.SHA256 != r.SHA256 {
			t.Errorf("two builds differ: %s and %s (%s)", r.SHA256, r2.SHA256, differences(t, img, again, r.Layout))
		}
		os.Remove(again)
	})
	t.Run("first boot applies the seed; a second boot keeps it", func(t *testing.T) {
		disk := copyImage(t, img, filepath.Join(dir, "boot.img"), 1<<30)
		seed := "rack: 1\nssh-authorized-keys:\n  - " + strings.Replace(testKey, "installer-test", "seed-key", 1) + "\n"
		if err := installer.WriteSeed(context.Background(), disk, []byte(seed)); err != nil {
			t.Fatal(err)
		}
		addProbe(t, disk, r.Layout)
		first := boot(t, disk, "QEMU-SN-1")
		checkServer(t, "first boot", first, r.Size)
		if !strings.Contains(first.console, "identity applied: boot-1, serial QEMU-SN-1, rack 1, index 3, node address 10.69.0.195") {
			t.Errorf("first boot: the console does not show the identity applied")
		}
		if first.probe["keys"] != "2" {
			t.Errorf("first boot: the operator has %s authorized keys, want 2 (image and seed)", first.probe["keys"])
		}
		second := boot(t, disk, "QEMU-SN-1")
		checkServer(t, "second boot", second, r.Size)
		if !strings.Contains(second.console, "identity kept: boot-1, serial QEMU-SN-1, rack 1, index 3") {
			t.Errorf("second boot: the console does not show the identity kept")
		}
		if first.probe["hostkey"] != second.probe["hostkey"] || first.probe["hostkey"] == "" {
			t.Errorf("SSH host key %q at first boot, %q at the second", first.probe["hostkey"], second.probe["hostkey"])
		}
		t.Logf("boot to the probe: first %s, second %s", first.elapsed.Round(time.Second), second.elapsed.Round(time.Second))
	})
	t.Run("a malformed seed configures nothing", func(t *testing.T) {
		disk := copyImage(t, img, filepath.Join(dir, "bad.img"), 0)
		if err := installer.WriteSeed(context.Background(), disk, []byte("rack: one\n")); err != nil {
			t.Fatal(err)
		}
		addProbe(t, disk, r.Layout)
		b := boot(t, disk, "QEMU-SN-2")
		if !strings.Contains(b.console, "this boot server has no identity") || !strings.Contains(b.console, "nothing was written") {
			t.Errorf("the console does not explain the bad seed:\n%s", tail(b.console, 40))
		}
		for k, want := range map[string]string{"identity-file": "absent", "identity-unit": "failed", "agent": "inactive", "hostname": "localhost",
			"multi-user": "active", "keys": "1"} {
			if b.probe[k] != want {
				t.Errorf("%s = %q, want %q", k, b.probe[k], want)
			}
		}
	})
}

func checkStructure(t *testing.T, img string, r *installer.Result) {
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	ps := pt.PartitionTable.Partitions
	if len(ps) != 2 || !strings.EqualFold(ps[0].Type, installer.TypeESP) || !strings.EqualFold(ps[1].Type, installer.TypeRoot) ||
		!strings.EqualFold(ps[1].UUID, r.Layout.RootUUID) || ps[1].Start*512 != r.Layout.RootStart {
		t.Errorf("partitions %+v", ps)
	}
	// The ESP: the boot loader, the kernel and a loader entry for the root.
	esp := fmt.Sprintf("%s@@%d", img, r.Layout.ESPStart)
	for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/vmlinuz", "::/initrd.img", "::/neco/seed.yml.example"} {
		if out, err := exec.Command("mdir", "-i", esp, f).CombinedOutput(); err != nil {
			t.Errorf("ESP %s: %v %s", f, err, out)
		}
	}
	entry, err := exec.Command("mtype", "-i", esp, "::/loader/entries/neco.conf").Output()
	if err != nil || !strings.Contains(string(entry), "root=PARTUUID="+r.Layout.RootUUID) {
		t.Errorf("loader entry: %s %v", entry, err)
	}
	// The root file system, read with debugfs.
	root := fmt.Sprintf("%s?offset=%d", img, r.Layout.RootStart)
	cat := func(p string) string {
		out, err := exec.Command("debugfs", "-R", "cat "+p, root).Output()
		if err != nil {
			t.Errorf("debugfs cat %s: %v", p, err)
		}
		return string(out)
	}
	exists := func(p string) bool {
		out, _ := exec.Command("debugfs", "-R", "stat "+p, root).CombinedOutput()
		return !strings.Contains(string(out), "File not found")
	}
	for _, p := range []string{"/usr/bin/neco", "/usr/bin/bgp-node-agent", "/usr/sbin/bird", "/usr/sbin/chronyd", "/etc/neco/ipam.json",
		"/etc/systemd/system/multi-user.target.wants/neco-identity.service", "/etc/systemd/system/multi-user.target.wants/bgp-node-agent.service",
		"/etc/systemd/system/multi-user.target.wants/neco-updater.service", "/boot/efi", "/home/neco/.ssh/authorized_keys"} {
		if !exists(p) {
			t.Errorf("%s missing from the root file system", p)
		}
	}
	for _, p := range []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/neco/identity.json", "/var/lib/dbus/machine-id",
		"/etc/systemd/system/console-getty.service.d/autologin.conf"} {
		if exists(p) {
			t.Errorf("%s is in the image: it must be made per server", p)
		}
	}
	if s := cat("/etc/machine-id"); s != "" {
		t.Errorf("machine-id %q in the image", s)
	}
	if s := cat("/etc/shadow"); !regexp.MustCompile(`(?m)^root:[!*]`).MatchString(s) || !regexp.MustCompile(`(?m)^neco:[!*]`).MatchString(s) {
		t.Errorf("root or the operator has a password:\n%s", s)
	}
	if s := cat("/home/neco/.ssh/authorized_keys"); s != testKey+"\n" {
		t.Errorf("authorized_keys %q", s)
	}
	if s := cat("/etc/fstab"); !strings.Contains(s, "PARTUUID="+r.Layout.RootUUID+" / ext4") {
		t.Errorf("fstab:\n%s", s)
	}
	if s := cat("/etc/chrony/sources.d/neco.sources"); !strings.Contains(s, "server 10.72.0.1 iburst") {
		t.Errorf("chrony sources %q", s)
	}
	t.Logf("image %d MiB (%d MiB allocated): ESP %d MiB, root %d MiB; Linux %s; sha256 %s",
		r.Size>>20, r.Allocated>>20, r.Layout.ESPSize>>20, r.Layout.RootSize>>20, r.Kernel, r.SHA256)
}

// differences names the regions where two images differ, to explain a
// failed reproducibility check.
func differences(t *testing.T, a, b string, l installer.Layout) string {
	out, _ := exec.Command("cmp", "-l", a, b).Output()
	var esp, root, other int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		off, _ := strconv.ParseInt(f[0], 10, 64)
		off--
		switch {
		case off >= l.ESPStart && off < l.ESPStart+l.ESPSize:
			esp++
		case off >= l.RootStart && off < l.RootStart+l.RootSize:
			root++
		default:
			other++
		}
	}
	return fmt.Sprintf("%d bytes differ in the ESP, %d in the root file system, %d elsewhere", esp, root, other)
}

// copyImage copies the image (sparse) and makes the copy grow bytes
// larger, as a disk bigger than the image is.
func copyImage(t *testing.T, img, dst string, grow int64) string {
	if out, err := exec.Command("cp", "--sparse=always", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if grow > 0 {
		st, _ := os.Stat(dst)
		if err := os.Truncate(dst, st.Size()+grow); err != nil {
			t.Fatal(err)
		}
		// The backup GPT belongs at the disk's new end.
		if out, err := exec.Command("sfdisk", "--relocate", "gpt-bak-std", dst).CombinedOutput(); err != nil {
			t.Fatalf("sfdisk --relocate: %v %s", err, out)
		}
	}
	return dst
}

// probeScript prints what the test checks on the console, then powers
// the machine off. It is test scaffolding added to copies of the image.
const probeScript = `#!/bin/sh
p() { echo "PROBE $1=$2"; }
p version "$(neco --version 2>&1 | head -1)"
p multi-user "$(systemctl is-active multi-user.target)"
p identity-unit "$(systemctl is-active neco-identity.service)"
p agent "$(systemctl is-active bgp-node-agent.service)"
p identity-file "$(test -e /etc/neco/identity.json && echo present || echo absent)"
p identity "$(neco identity show -o json 2>&1 | tr -d ' \n')"
p hostname "$(hostname)"
p keys "$(grep -c . /home/neco/.ssh/authorized_keys)"
p hostkey "$(cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null | cut -d' ' -f2)"
p ssh "$(systemctl is-active ssh.service)"
p chrony "$(systemctl is-enabled chrony.service)"
p rootsize "$(df -B1M --output=size / | tail -1 | tr -d ' ')"
for u in ` + "UNITS" + `; do
	p "unit-$u" "$(systemctl is-enabled $u.service)/$(systemctl is-active $u.service)/$(systemctl show -P ConditionResult $u.service)"
done
p done yes
systemctl poweroff --no-block
`

const probeUnit = `[Unit]
Description=installer test probe
After=multi-user.target neco-identity.service bgp-node-agent.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/neco-probe
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// addProbe writes the probe into the copy's root file system with
// debugfs, nothing mounted.
func addProbe(t *testing.T, disk string, l installer.Layout) {
	dir := t.TempDir()
	script := filepath.Join(dir, "neco-probe")
	unit := filepath.Join(dir, "neco-probe.service")
	os.WriteFile(script, []byte(strings.Replace(probeScript, "UNITS", strings.Join(waiting, " "), 1)), 0o755)
	os.WriteFile(unit, []byte(probeUnit), 0o644)
	cmds := strings.Join([]string{
		"mkdir /usr/local/sbin",
		"write " + script + " /usr/local/sbin/neco-probe",
		"write " + unit + " /etc/systemd/system/neco-probe.service",
		"symlink /etc/systemd/system/multi-user.target.wants/neco-probe.service /etc/systemd/system/neco-probe.service",
	}, "\n")
	cmd := exec.Command("debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", disk, l.RootStart))
	cmd.Stdin = strings.NewReader(cmds + "\n")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "Could not") {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
}

type booted struct {
	console string
	probe   map[string]string
	elapsed time.Duration
}

// boot runs the disk in QEMU (TCG, OVMF, no NIC) until it powers off.
func boot(t *testing.T, disk, serial string) booted {
	t.Helper()
	dir := t.TempDir()
	vars := filepath.Join(dir, "vars.fd")
	data, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vars, data, 0o644)
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "1536", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "file:"+console, "-nic", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode, "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+disk+",format=raw,if=virtio", "-smbios", "type=1,serial="+serial)
	testutil.DieWithTest(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	b := booted{elapsed: time.Since(start), probe: map[string]string{}}
	raw, _ := os.ReadFile(console)
	b.console = strings.ReplaceAll(string(raw), "\r", "")
	if err != nil {
		t.Fatalf("qemu: %v %s\nconsole:\n%s", err, out, tail(b.console, 60))
	}
	for _, line := range strings.Split(b.console, "\n") {
		if i := strings.Index(line, "PROBE "); i >= 0 {
			if k, v, ok := strings.Cut(line[i+len("PROBE "):], "="); ok {
				b.probe[k] = strings.TrimSpace(v)
			}
		}
	}
	if b.probe["done"] != "yes" {
		t.Fatalf("the probe did not run to its end; console:\n%s", tail(b.console, 80))
	}
	return b
}

// checkServer checks a booted server that has its identity.
func checkServer(t *testing.T, what string, b booted, imageSize int64) {
	t.Helper()
	want := map[string]string{"version": "neco version " + version, "multi-user": "active", "identity-unit": "active", "identity-file": "present",
		"hostname": "boot-1", "ssh": "active", "chrony": "enabled"}
	for k, v := range want {
		if b.probe[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, b.probe[k], v)
		}
	}
	if !strings.Contains(b.probe["identity"], `"serial":"QEMU-SN-1","rack":1,"index-in-rack":3`) {
		t.Errorf("%s: identity %s", what, b.probe["identity"])
	}
	for _, u := range waiting {
		// Enabled, not started: their configuration comes from neco setup.
		if got := b.probe["unit-"+u]; got != "enabled/inactive/no" {
			t.Errorf("%s: %s is %q, want enabled/inactive/no (enabled, waiting for neco setup)", what, u, got)
		}
	}
	if n, _ := strconv.ParseInt(b.probe["rootsize"], 10, 64); n<<20 <= imageSize {
		t.Errorf("%s: / is %s MiB: it did not grow over the larger disk (image %d MiB)", what, b.probe["rootsize"], imageSize>>20)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
