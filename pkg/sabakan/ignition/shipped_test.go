package ignition

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	v3 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/vincent-petithory/dataurl"

	"github.com/openneco/neco/pkg/bgp/agent"
	"github.com/openneco/neco/pkg/config"
)

// TestShippedTemplates builds every role template under ignitions/,
// validates it, renders it for a machine and checks that the node would run
// the BGP node agent with a configuration the agent accepts.
func TestShippedTemplates(t *testing.T) {
	roles, err := filepath.Glob("../../../ignitions/roles/*/site.yml")
	if err != nil || len(roles) == 0 {
		t.Fatalf("no role templates under ignitions/roles: %v", err)
	}
	for _, site := range roles {
		role := filepath.Base(filepath.Dir(site))
		t.Run(role, func(t *testing.T) {
			tmpl, err := Build(site, map[string]any{
				"registries":  []any{"10.72.48.0:5000", "10.72.48.1:5000"},
				"registry_ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
				"cke_ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyK cke",
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(tmpl); err != nil {
				t.Fatal(err)
			}
			m := dummyMachine()
			m.Spec.Role = role
			out, err := Render(tmpl, m, urls)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := v3.ParseCompatibleVersion(out)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]string{}
			for _, f := range cfg.Storage.Files {
				src := *f.Contents.Source
				if d, err := dataurl.DecodeString(src); err == nil {
					src = string(d.Data)
				}
				files[f.Path] = src
			}
			if files["/opt/neco/bin/bgp-node-agent"] != urls.HTTP+"/api/v1/assets/bgp-node-agent" {
				t.Errorf("agent binary from %q", files["/opt/neco/bin/bgp-node-agent"])
			}
			// The engine reaches the node as root with its key.
			var rootKeys []string
			for _, u := range cfg.Passwd.Users {
				if u.Name == "root" {
					for _, k := range u.SSHAuthorizedKeys {
						rootKeys = append(rootKeys, string(k))
					}
				}
			}
			if len(rootKeys) != 1 || !strings.HasSuffix(rootKeys[0], " cke") {
				t.Errorf("root's SSH keys: %q", rootKeys)
			}
			// The pods' network is podnet's, written when its daemon serves.
			for name := range files {
				if strings.HasPrefix(name, "/etc/cni/") {
					t.Errorf("Ignition writes %s", name)
				}
			}
			if files["/etc/hostname"] != m.Spec.Serial+"\n" || files["/etc/neco/role"] != role+"\n" {
				t.Errorf("hostname %q role %q", files["/etc/hostname"], files["/etc/neco/role"])
			}
			// containerd pulls registry.k8s.io from every boot server.
			hosts := files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
			for _, want := range []string{`server = "https://registry.k8s.io"`, `[host."https://10.72.48.0:5000"]`,
				`[host."https://10.72.48.1:5000"]`, `ca = "/etc/neco/registry-ca.crt"`} {
				if !strings.Contains(hosts, want) {
					t.Errorf("hosts.toml lacks %s:\n%s", want, hosts)
				}
			}
			var parsed struct {
				Server string
				Host   map[string]struct {
					Capabilities []string
					CA           string
				}
			}
			if _, err := toml.Decode(hosts, &parsed); err != nil || len(parsed.Host) != 2 ||
				parsed.Host["https://10.72.48.1:5000"].CA != "/etc/neco/registry-ca.crt" {
				t.Errorf("hosts.toml does not parse as containerd's: %+v %v\n%s", parsed, err, hosts)
			}
			if !strings.HasPrefix(files["/etc/neco/registry-ca.crt"], "-----BEGIN CERTIFICATE-----") {
				t.Errorf("registry CA %q", files["/etc/neco/registry-ca.crt"])
			}
			enabled := false
			for _, u := range cfg.Systemd.Units {
				if u.Name == "bgp-node-agent.service" && u.Enabled != nil && *u.Enabled && u.Contents != nil &&
					strings.Contains(*u.Contents, "-config /etc/neco/bgp-node-agent.yml") {
					enabled = true
				}
			}
			if !enabled {
				t.Error("bgp-node-agent.service is not enabled with its configuration")
			}
			// The rendered agent configuration loads and validates.
			path := filepath.Join(t.TempDir(), "agent.yml")
			os.WriteFile(path, []byte(files["/etc/neco/bgp-node-agent.yml"]), 0o644)
			ac := agent.DefaultConfig()
			if err := config.Load(flag.NewFlagSet("x", flag.ContinueOnError), path, ac); err != nil {
				t.Fatal(err)
			}
			if err := ac.Validate(); err != nil {
				t.Fatal(err)
			}
			if ac.SabakanURL != urls.HTTP || ac.Serial != m.Spec.Serial {
				t.Errorf("agent config: sabakan %q serial %q", ac.SabakanURL, ac.Serial)
			}
		})
	}
}
