package status

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke"
)

func TestParseNode(t *testing.T) {
	out := "unit rivers active\nrecord rivers {\"hash\":\"h1\",\"started\":\"2026-12-02T00:00:00Z\"}\n" +
		"unit etcd failed\nrecord etcd {\"hash\":\"h2\",\"cert_not_after\":\"2026-12-09T00:00:00Z\"}\n" +
		"unit kubelet inactive\nunit containerd active\netcd-data\nend\n"
	st, err := ParseNode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Reachable || !st.EtcdData {
		t.Errorf("status = %+v", st)
	}
	if r := st.Services[cke.Rivers]; !r.Running || r.Hash != "h1" {
		t.Errorf("rivers = %+v", r)
	}
	if e := st.Services[cke.Etcd]; e.Running || e.Hash != "h2" || !e.CertNotAfter.Equal(time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("etcd = %+v", e)
	}
	if k := st.Services[cke.Kubelet]; k.Running || k.Hash != "" {
		t.Errorf("kubelet = %+v", k)
	}
	for _, bad := range []string{
		"unit rivers active\n",    // cut short
		"unit sshd active\nend\n", // not ours
		"record etcd {bad\nend\n", // corrupt record
		"hello\nend\n",            // something else answered
	} {
		if _, err := ParseNode([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestNodeScript runs the script with a shell on this machine: it must be
// valid sh and say "end" whatever the machine has.
func TestNodeScript(t *testing.T) {
	out, err := exec.Command("sh", "-c", NodeScript()).Output()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	st, err := ParseNode(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(st.Services) != len(cke.AllServices) {
		t.Errorf("services = %v", st.Services)
	}
	if !strings.HasSuffix(string(out), "end\n") {
		t.Errorf("output = %q", out)
	}
}

func FuzzParseNode(f *testing.F) {
	f.Add([]byte("unit rivers active\nrecord rivers {\"hash\":\"h\"}\netcd-data\nend\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseNode(data)
		if err == nil && (st == nil || !st.Reachable) {
			t.Fatal("parsed without a status")
		}
	})
}
