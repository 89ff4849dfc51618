package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

// TestDemo runs demo/demo.sh (what make demo-sabakan runs after building) with
// binaries of this tree and free ports, and checks what it shows.
func TestDemo(t *testing.T) {
	paths := testutil.RequireCommands(t, "etcd", "etcdctl", "curl", "ss", "setsid")
	bin := t.TempDir()
	for _, p := range paths[:2] {
		if err := os.Symlink(p, filepath.Join(bin, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(sabakanBinary(t), filepath.Join(bin, "sabakan")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "sabactl"), "github.com/openneco/neco/cmd/sabactl").CombinedOutput(); err != nil {
		t.Fatalf("build sabactl: %v\n%s", err, out)
	}
	script, err := filepath.Abs("../../../demo/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NECO_DEMO_BIN="+bin, "NECO_DEMO_DIR="+filepath.Join(t.TempDir(), "run"),
		"NECO_DEMO_ETCD="+freeAddr(t), "NECO_DEMO_ETCD_PEER="+freeAddr(t), "NECO_DEMO_HTTP="+freeAddr(t),
		"NECO_DEMO_HTTPS="+freeAddr(t), "NECO_DEMO_METRICS="+freeAddr(t), "NECO_DEMO_DHCP="+freeAddr(t))
	demo := func(arg string) string {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("demo.sh %s: %v\n%s", arg, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { demo("stop") })
	out := demo("start")
	// Compare with runs of blanks squeezed: tables are aligned.
	squeezed := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"ss-3-1 3 ss uninitialized 10.69.2.73 IPMI-2.0",
		"cs-1-1 1 cs unreachable 10.69.0.197 iDRAC-9",
		`"serial":"cs-1-0","ipv4":["10.69.0.196"`,
		"machines/ss-2-0 put-label detail:disk-layout/v2",
		"make demo-sabakan-stop",
	} {
		if !strings.Contains(squeezed, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if out := demo("start"); !strings.Contains(out, "already running") {
		t.Errorf("a second start: %s", out)
	}
	if out := demo("stop"); !strings.Contains(out, "removed") {
		t.Errorf("stop: %s", out)
	}
}
