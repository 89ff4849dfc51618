package ignition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	v3 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/hashicorp/go-version"
	"github.com/vincent-petithory/dataurl"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

var urls = URLs{HTTP: "http://10.69.0.3:10080", HTTPS: "https://10.69.0.3:10443"}

func TestRender(t *testing.T) {
	m := dummyMachine()
	tests := []struct {
		name    string
		tmpl    Template
		want    []string // substrings of the rendered JSON
		wantErr string
	}{
		{
			name: "spec 2.3 reference style",
			tmpl: Template{Version: "2.3", Meta: map[string]any{"k": "v"}, Template: json.RawMessage(`{
				"storage":{"files":[{"filesystem":"root","path":"/etc/hostname","mode":420,"contents":{"source":"data:,{{.Spec.Serial}}%0A"}}]},
				"systemd":{"units":[{"name":"a.service","contents":"x={{ MyURL }} y={{ Metadata \"k\" }} z={{ mul .Spec.Rack 10 }} w={{ json .Spec.IPv4 }}"}]}}`)},
			want: []string{`"version":"2.3.0"`, `data:,dummy0001%0A`, `x=http://10.69.0.3:10080 y=v z=10 w=[\"10.69.0.197\",\"10.69.1.5\",\"10.69.1.69\"]`},
		},
		{
			name: "spec 3.4 with top-level spec fields",
			tmpl: Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"/etc/x","contents":{"source":"{{ MyURLHTTPS }}/x/{{ .Serial }}"}}]}}`)},
			want: []string{`"version":"3.4.0"`, `https://10.69.0.3:10443/x/dummy0001`},
		},
		{name: "div by zero", tmpl: Template{Version: "3.4", Template: json.RawMessage(`{"a":"{{ div 1 0 }}"}`)}, wantErr: "division by zero"},
		{name: "unknown metadata", tmpl: Template{Version: "3.4", Template: json.RawMessage(`{"a":"{{ Metadata \"nope\" }}"}`)}, wantErr: "no metadata"},
		{name: "unknown field", tmpl: Template{Version: "3.4", Template: json.RawMessage(`{"a":"{{ .Nope }}"}`)}, wantErr: "Nope"},
		{name: "bad syntax", tmpl: Template{Version: "3.4", Template: json.RawMessage(`{"a":"{{ .Serial "}`)}, wantErr: "unclosed action"},
		{name: "version", tmpl: Template{Version: "1.0", Template: json.RawMessage(`{}`)}, wantErr: "unsupported Ignition version"},
		{name: "not an object", tmpl: Template{Version: "3.4", Template: json.RawMessage(`[1]`)}, wantErr: "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render(&tt.tmpl, m, urls)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, sabakan.ErrBadRequest) {
					t.Fatalf("err = %v, want a bad request with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("rendered %s\nlacks %s", out, w)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		tmpl Template
		ok   bool
	}{
		{"2.3 ok", Template{Version: "2.3", Template: json.RawMessage(`{"storage":{"files":[{"filesystem":"root","path":"/a","contents":{"source":"data:,x"}}]}}`)}, true},
		{"2.3 relative path", Template{Version: "2.3", Template: json.RawMessage(`{"storage":{"files":[{"filesystem":"root","path":"a"}]}}`)}, false},
		{"2.2 no filesystem", Template{Version: "2.2", Template: json.RawMessage(`{"storage":{"files":[{"path":"/a"}]}}`)}, false},
		{"3.4 ok", Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"/a","contents":{"source":"data:,x"}}]}}`)}, true},
		{"3.4 relative path", Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"a"}]}}`)}, false},
		{"3.4 unknown key", Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"filez":[]}}`)}, false},
		{"3.4 bad unit", Template{Version: "3.4", Template: json.RawMessage(`{"systemd":{"units":[{"name":"x.service","contents":"[Unit\n"}]}}`)}, false},
		{"empty", Template{Version: "3.4"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(&tt.tmpl)
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, sabakan.ErrBadRequest) {
				t.Errorf("error %v is not a bad request", err)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	tmpl, err := Build("testdata/tree/site.yml", map[string]any{"version": "1.2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(tmpl); err != nil {
		t.Fatalf("built template is invalid: %v\n%s", err, tmpl.Template)
	}
	out, err := Render(tmpl, dummyMachine(), urls)
	if err != nil {
		t.Fatal(err)
	}
	cfg, rpt, err := v3.ParseCompatibleVersion(out)
	if err != nil {
		t.Fatalf("%v: %s", err, rpt)
	}
	files := map[string]string{}
	for _, f := range cfg.Storage.Files {
		src := *f.Contents.Source
		if d, err := dataurl.DecodeString(src); err == nil {
			src = string(d.Data)
		}
		files[f.Path] = src
	}
	want := map[string]string{
		"/etc/hostname":                        "dummy0001\n",
		"/etc/motd":                            "welcome to worker\n",
		"/opt/bin/agent":                       "http://10.69.0.3:10080/api/v1/assets/agent",
		"/etc/systemd/network/10-node0.netdev": "[NetDev]\nName=node0\nKind=dummy\n",
	}
	for p, w := range want {
		if files[p] != w {
			t.Errorf("%s = %q, want %q", p, files[p], w)
		}
	}
	units := map[string]string{}
	for _, u := range cfg.Systemd.Units {
		c := ""
		if u.Contents != nil {
			c = *u.Contents
		}
		units[u.Name] = fmt.Sprint(u.Mask != nil && *u.Mask, " ", c)
	}
	if !strings.Contains(units["agent.service"], "--server=http://10.69.0.3:10080 --rack=1 --next=2") {
		t.Errorf("agent.service = %q", units["agent.service"])
	}
	if units["update-engine.service"] != "true " {
		t.Errorf("update-engine.service = %q, want masked", units["update-engine.service"])
	}
	if len(cfg.Passwd.Users) != 1 || cfg.Passwd.Users[0].Name != "cybozu" {
		t.Errorf("passwd users %v", cfg.Passwd.Users)
	}
}

func TestCompareIDs(t *testing.T) {
	for _, tt := range []struct {
		name, a, b string
		want       int
	}{
		{"numbers", "1", "2", -1},
		{"numeric, not textual", "10", "9", 1},
		{"segments numeric", "1.10.0", "1.9.0", 1},
		{"equal", "1.2", "1.2", 0},
		{"missing segment is zero", "1.2", "1.2.1", -1},
		{"equal versions by text", "1.2", "1.2.0", -1},
		{"v prefix", "v2", "1.9", 1},
		{"pre-release before release", "1.0.0-rc.1", "1.0.0", -1},
		{"pre-releases numeric", "1.0.0-rc.2", "1.0.0-rc.10", -1},
		{"metadata ignored", "1.0.0+b", "1.0.0-rc", 1},
		{"neco releases, same day", "2025.03.10-9", "2025.03.10-10", -1},
		{"neco releases, days", "2025.03.09-99", "2025.03.10-1", -1},
		{"legacy id before any version", "notsemver", "0.0.1", -1},
		{"legacy id before any version, reversed", "0.0.1", "zzz", 1},
		{"legacy ids by text", "abc", "abd", -1},
		{"legacy dotted id", "1.0.0.rc1", "0", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CompareIDs(tt.a, tt.b); (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
				t.Errorf("CompareIDs(%s, %s) = %d, want sign of %d", tt.a, tt.b, got, tt.want)
			}
			if got := CompareIDs(tt.b, tt.a); (got > 0) != (tt.want < 0) || (got < 0) != (tt.want > 0) {
				t.Errorf("CompareIDs(%s, %s) = %d, want sign of %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

// TestOrderIsTheReferences sorts distinct versions as the reference sorts
// template ids (go-version's Collection) and as CompareIDs does.
func TestOrderIsTheReferences(t *testing.T) {
	ids := []string{"2025.03.10-10", "1.0.0", "v0.9", "1.0.0-rc.1", "1.0.0-beta", "2", "1.10", "1.9.9", "0.0.1+meta",
		"2025.03.10-9", "2025.03.09-100", "1.0.1-alpha.1", "1.0.1-alpha.beta", "3.0.0.1"}
	vs := make(version.Collection, len(ids))
	for i, id := range ids {
		vs[i] = version.Must(version.NewVersion(id))
	}
	sort.Sort(vs)
	var want []string
	for _, v := range vs {
		want = append(want, v.Original())
	}
	got := slices.Clone(ids)
	slices.SortFunc(got, CompareIDs)
	if !slices.Equal(got, want) {
		t.Errorf("CompareIDs order %v\n   reference order %v", got, want)
	}
}

func TestIDChecks(t *testing.T) {
	for _, tt := range []struct {
		id            string
		isNew, exists bool // admitted for a new template, for an existing one
	}{
		{"1", true, true},
		{"1.2.3", true, true},
		{"v1.2.3-rc.1+build.5", true, true},
		{"2025.03.10-12345", true, true},
		{"1.0~x", true, true},
		{"notsemver", false, true},
		{"1.0.0.rc1", false, true},
		{"1.0_a", false, true},
		{"-1", false, false},
		{"1 2", false, false},
		{"../x", false, false},
		{"", false, false},
		{strings.Repeat("1.", 64) + "1", false, false},
	} {
		if err := checkNewID(tt.id); (err == nil) != tt.isNew || (err != nil && !errors.Is(err, sabakan.ErrBadRequest)) {
			t.Errorf("checkNewID(%q) = %v, want admitted %v", tt.id, err, tt.isNew)
		}
		if err := checkID(tt.id); (err == nil) != tt.exists {
			t.Errorf("checkID(%q) = %v, want admitted %v", tt.id, err, tt.exists)
		}
	}
}

func TestStore(t *testing.T) {
	client := etcdtest.Client(t)
	s := NewStore(client, nil)
	ctx := context.Background()
	tmpl := &Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,{{.Serial}}"}}]}}`)}
	if ids, err := s.IDs(ctx, "worker"); err != nil || ids != nil {
		t.Errorf("IDs of an empty role = %v, %v; want nil, nil", ids, err)
	}
	if _, err := s.Newest(ctx, "worker"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("Newest of an empty role: %v", err)
	}
	if _, err := s.IDs(ctx, "bad role!"); !errors.Is(err, sabakan.ErrBadRequest) {
		t.Errorf("IDs of an invalid role: %v", err)
	}
	for i := 1; i <= 12; i++ {
		if err := s.Put(ctx, "worker", fmt.Sprintf("1.%d", i), tmpl); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s.IDs(ctx, "worker")
	if err != nil || len(ids) != MaxTemplatesPerRole || ids[0] != "1.3" || ids[9] != "1.12" {
		t.Errorf("ids = %v, %v; want 1.3..1.12", ids, err)
	}
	if err := s.Put(ctx, "worker", "1.12", tmpl); !errors.Is(err, sabakan.ErrConflict) {
		t.Errorf("overwrite: %v, want conflict", err)
	}
	if err := s.Put(ctx, "worker", "1.2", tmpl); !errors.Is(err, sabakan.ErrConflict) || !strings.Contains(err.Error(), "older than the 10 kept") {
		t.Errorf("an id older than the kept ones: %v, want conflict", err)
	}
	if ids, _ := s.IDs(ctx, "worker"); len(ids) != MaxTemplatesPerRole || ids[0] != "1.3" {
		t.Errorf("after refusing an old id: %v", ids)
	}
	bad := &Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"rel"}]}}`)}
	if err := s.Put(ctx, "worker", "2.0", bad); !errors.Is(err, sabakan.ErrBadRequest) {
		t.Errorf("invalid template: %v, want bad request", err)
	}
	for _, bad := range [][2]string{{"bad role!", "1"}, {"worker", "../x"}, {"worker", "notsemver"}} {
		if err := s.Put(ctx, bad[0], bad[1], tmpl); !errors.Is(err, sabakan.ErrBadRequest) {
			t.Errorf("Put(%q, %q) = %v, want bad request", bad[0], bad[1], err)
		}
	}
	m := dummyMachine()
	out, err := s.RenderFor(ctx, m, "1.12", urls)
	if err != nil || !strings.Contains(string(out), "dummy0001") {
		t.Errorf("RenderFor = %s, %v", out, err)
	}
	if newest, _ := s.Newest(ctx, "worker"); newest != "1.12" {
		t.Errorf("newest %s", newest)
	}
	if err := s.Delete(ctx, "worker", "1.12"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "worker", "1.12"); !errors.Is(err, sabakan.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// TestLegacyIDs: templates whose ids are not versions, which earlier
// versions accepted, stay readable and deletable; they sort before every
// version, so a machine boots a version whenever its role has one, and
// they are the first dropped when new templates come.
func TestLegacyIDs(t *testing.T) {
	client := etcdtest.Client(t)
	s := NewStore(client, nil)
	ctx := context.Background()
	tmpl := &Template{Version: "3.4", Template: json.RawMessage(`{"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,{{.Serial}}"}}]}}`), Meta: map[string]any{}}
	data, _ := json.Marshal(tmpl)
	for _, id := range []string{"zzz", "latest", "1.0.0.rc1"} {
		if _, err := client.Put(ctx, key("worker", id), string(data)); err != nil {
			t.Fatal(err)
		}
	}
	if newest, err := s.Newest(ctx, "worker"); err != nil || newest != "zzz" {
		t.Errorf("newest of legacy ids only = %q, %v; want the last by text", newest, err)
	}
	if err := s.Put(ctx, "worker", "0.0.1", tmpl); err != nil {
		t.Fatal(err)
	}
	ids, _ := s.IDs(ctx, "worker")
	if want := []string{"1.0.0.rc1", "latest", "zzz", "0.0.1"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	if newest, _ := s.Newest(ctx, "worker"); newest != "0.0.1" {
		t.Errorf("newest = %q, want the version", newest)
	}
	if _, err := s.Get(ctx, "worker", "latest"); err != nil {
		t.Errorf("Get of a legacy id: %v", err)
	}
	if err := s.Delete(ctx, "worker", "latest"); err != nil {
		t.Errorf("Delete of a legacy id: %v", err)
	}
	for i := 1; i <= MaxTemplatesPerRole-2; i++ {
		if err := s.Put(ctx, "worker", fmt.Sprintf("1.%d", i), tmpl); err != nil {
			t.Fatal(err)
		}
	}
	ids, _ = s.IDs(ctx, "worker")
	if len(ids) != MaxTemplatesPerRole || ids[0] != "zzz" || ids[1] != "0.0.1" {
		t.Errorf("after %d more: ids = %v; want the legacy 1.0.0.rc1 dropped first", MaxTemplatesPerRole-2, ids)
	}
}

// FuzzRender renders arbitrary templates: never a panic, and every failure
// is a bad request (a 400, not a 500).
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		`{"storage":{"files":[{"path":"/a","contents":{"source":"data:,{{.Serial}}"}}]}}`,
		`{"a":"{{ add 1 2 }}{{ div 4 2 }}{{ json .Spec }}"}`, `{"a":"data:;base64,e3s="}`, `[]`, `{"a":"{{"}`,
	} {
		f.Add("3.4", s)
	}
	m := dummyMachine()
	f.Fuzz(func(t *testing.T, version, tmpl string) {
		out, err := Render(&Template{Version: version, Template: json.RawMessage(tmpl)}, m, urls)
		if err != nil {
			if !errors.Is(err, sabakan.ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("rendered invalid JSON %q", out)
		}
	})
}
