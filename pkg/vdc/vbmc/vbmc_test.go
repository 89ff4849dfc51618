package vbmc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/vdc/menu"
)

// The machine list the menu writes is what the service reads.
func TestReadConfigOfMenu(t *testing.T) {
	m := menu.Default()
	m.BMC = true
	dir := t.TempDir()
	p, err := menu.Generate(m, menu.Options{FilesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConfig(filepath.Join(dir, menu.BMCFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != menu.BMCHost || len(c.Machines) != len(p.Hosts) {
		t.Fatalf("config %+v, want host %s and %d machines", c, menu.BMCHost, len(p.Hosts))
	}
	for _, mc := range c.Machines {
		if h := p.Hosts[mc.Name]; h.BMC != mc.Address || h.Serial != mc.Serial {
			t.Errorf("%+v, plan %+v", mc, h)
		}
	}
}

func TestReadConfigRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":          `{`,
		"no machines":       `{"host":"bmc","machines":[]}`,
		"no host":           `{"machines":[{"name":"a","address":"10.72.16.3"}]}`,
		"no name":           `{"host":"bmc","machines":[{"address":"10.72.16.3"}]}`,
		"duplicate address": `{"host":"bmc","machines":[{"name":"a","address":"10.72.16.3"},{"name":"b","address":"10.72.16.3"}]}`,
		"IPv6":              `{"host":"bmc","machines":[{"name":"a","address":"fd00::1"}]}`,
	} {
		f := filepath.Join(t.TempDir(), "vbmc.json")
		os.WriteFile(f, []byte(doc), 0o644)
		if _, err := ReadConfig(f); err == nil || !strings.Contains(err.Error(), "vbmc") {
			t.Errorf("%s: got %v, want a vbmc error", name, err)
		}
	}
}

func TestReadCredentials(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(f, []byte(`{"username":"neco","password":"pw"}`), 0o600)
	c, err := ReadCredentials(f)
	if err != nil || c.Username != "neco" || c.Password != "pw" {
		t.Fatalf("got %v, %v", c, err)
	}
	os.WriteFile(f, []byte(`{"username":"neco"}`), 0o600)
	if _, err := ReadCredentials(f); err == nil {
		t.Error("credentials without a password were accepted")
	}
}
