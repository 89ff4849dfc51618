package menu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetboot(t *testing.T) {
	m := Default()
	m.Agent, m.WorkerDHCP = true, true
	o := Options{FilesDir: "/x", AgentBinary: "/b/bgp-node-agent", HealthAgentBinary: "/b/node-health-agent"}
	p, err := Generate(m, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Files["netboot/rack1-cs2/boot-servers"]); got != "10.69.0.3,10.69.0.195,10.69.1.131\n" {
		t.Errorf("boot servers = %q", got)
	}
	for _, n := range p.Cluster.NspawnNodes {
		boot := p.Hosts[n.Name].Role == RoleBoot
		for _, ifc := range n.Interfaces {
			if len(ifc.Addresses) > 0 {
				t.Errorf("%s: static address %v", n.Name, ifc.Addresses)
			}
		}
		script := string(p.Files["init/"+n.Name+".sh"])
		if boot {
			// Boot servers run the agent from their identity file (before
			// sabakan exists) and the package's health agent.
			if !strings.Contains(script, "/x/agent/"+n.Name+"/identity.json") || len(n.Binds) != 1 {
				t.Errorf("%s: not an agent with an identity file: %v\n%s", n.Name, n.Binds, script)
			}
			continue
		}
		for _, want := range []string{"/x/netboot/netboot", "/x/netboot/vdc-netboot.service", "/x/netboot/" + n.Name + "/boot-servers",
			"multi-user.target.wants/vdc-netboot.service", `ln -sf /dev/null "$root/etc/systemd/system/bird.service"`} {
			if !strings.Contains(script, want) {
				t.Errorf("%s: init script lacks %q:\n%s", n.Name, want, script)
			}
		}
		if len(n.Binds) != 2 || n.Binds[0].Source != o.AgentBinary || n.Binds[1].Source != o.HealthAgentBinary {
			t.Errorf("%s: binds %+v", n.Name, n.Binds)
		}
		conf := string(p.Files["netboot/"+n.Name+"/bgp-node-agent.yaml"])
		if strings.Contains(conf, "identity-file") || !strings.Contains(conf, "/etc/vdc/serial") {
			t.Errorf("%s: agent configuration\n%s", n.Name, conf)
		}
	}
	// The agent of a network-booting worker takes sabakan from the lease.
	if !strings.Contains(NetbootAgentUnit, "-sabakan-url ${SABAKAN_URL}") || !strings.Contains(NetbootAgentUnit, "EnvironmentFile=/run/vdc/netboot.env") {
		t.Errorf("agent unit:\n%s", NetbootAgentUnit)
	}

	// The health agent only runs in network-booting workers.
	m.WorkerDHCP = false
	if _, err := Generate(m, o); err == nil {
		t.Error("a health agent without network boot was accepted")
	}
}

// TestNetbootScripts checks the shell scripts' syntax with the machines'
// shell (dash, as /bin/sh on Debian).
func TestNetbootScripts(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		sh = "sh"
	}
	dir := t.TempDir()
	for name, text := range map[string]string{"netboot": NetbootScript, "udhcpc.script": UdhcpcScript} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}
