package ckecli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

const templateYAML = `name: dc
service_subnet: 10.68.0.0/16
nodes:
- user: cybozu
  control_plane: true
- user: cybozu
`

func TestSabakanSettings(t *testing.T) {
	e := newEnv(t)
	if out := e.ok("", "sabakan", "show"); !strings.Contains(out, "integration: off: no URL and no template") {
		t.Errorf("show before anything:\n%s", out)
	}
	e.fails(ExitNotFound, "", "sabakan", "get-url")
	e.fails(ExitNotFound, "", "sabakan", "get-template")

	if stderr := e.fails(ExitInvalid, "", "sabakan", "set-url", "10.69.0.3:10080"); !strings.Contains(stderr, "want http(s)://host:port") {
		t.Errorf("bad URL: %s", stderr)
	}
	e.ok("", "sabakan", "set-url", "http://10.69.0.3:10080")
	if out := e.ok("", "sabakan", "get-url"); out != "http://10.69.0.3:10080\n" {
		t.Errorf("get-url = %q", out)
	}
	if out := e.ok("", "sabakan", "show"); !strings.Contains(out, "off: no template") {
		t.Errorf("show without template:\n%s", out)
	}

	bad := strings.Replace(templateYAML, "- user: cybozu\n  control_plane", "- user: cybozu\n  address: 10.0.0.1\n  control_plane", 1)
	if stderr := e.fails(ExitInvalid, "", "sabakan", "set-template", e.file("bad.yml", bad)); !strings.Contains(stderr, "a template has none") {
		t.Errorf("bad template: %s", stderr)
	}
	e.fails(ExitNotFound, "", "sabakan", "get-template")
	e.ok(templateYAML, "sabakan", "set-template", "-")
	if out := e.ok("", "sabakan", "get-template"); !strings.Contains(out, "control_plane: true") || !strings.Contains(out, "service_subnet: 10.68.0.0/16") {
		t.Errorf("get-template:\n%s", out)
	}
	if out := e.ok("", "sabakan", "show"); !strings.Contains(out, "integration: runs") {
		t.Errorf("show when set:\n%s", out)
	}
	e.ok("", "sabakan", "disable")
	var view struct {
		Enabled, Disabled, Template bool
		URL                         string
	}
	if err := json.Unmarshal([]byte(e.ok("", "sabakan", "show", "-o", "json")), &view); err != nil || view.Enabled || !view.Disabled || !view.Template {
		t.Errorf("show -o json when disabled: %+v, %v", view, err)
	}
	e.ok("", "sabakan", "enable")
	if s, err := e.st.GetSabakanSettings(context.Background()); err != nil || !s.Enabled() {
		t.Errorf("settings = %+v, %v", s, err)
	}
}
