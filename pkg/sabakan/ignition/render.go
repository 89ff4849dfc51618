// Package ignition holds sabakan's Ignition templates: their storage in
// etcd (per role, versioned ids, never overwritten, the newest 10 kept),
// their rendering for one machine, their validation (spec 2.2/2.3 like the
// reference, and spec 3.0–3.5 with the coreos/ignition/v2 config parser),
// and the YAML tree format that `sabactl ignitions set` builds them from.
package ignition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	v3 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"
	"github.com/vincent-petithory/dataurl"

	"github.com/openneco/neco/pkg/sabakan"
)

// Versions are the Ignition spec versions a template may have.
var Versions = []string{"2.2", "2.3", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5"}

// MaxTemplateSize bounds a stored template (2 MiB).
const MaxTemplateSize = 2 << 20

// Template is an Ignition template: an Ignition config of Version whose
// strings are Go text/templates, plus free metadata for Metadata.
type Template struct {
	Version  string          `json:"version"`
	Template json.RawMessage `json:"template"`
	Meta     map[string]any  `json:"meta"`
}

// Is3 reports whether the template is of spec 3.x.
func (t *Template) Is3() bool { return strings.HasPrefix(t.Version, "3.") }

// URLs are what the template functions MyURL and MyURLHTTPS return.
type URLs struct {
	HTTP  string
	HTTPS string
}

// View is what a template sees as ".": the machine, with the fields of its
// spec also at the top (".Serial" as in reference templates written
// against MachineSpec, and ".Spec.Serial").
type View struct {
	sabakan.Machine
	sabakan.MachineSpec
}

// Render renders t for machine m and returns the Ignition config as JSON.
// Every string of the template is rendered; data: URLs are decoded,
// rendered and encoded again, so that file contents can use templates.
func Render(t *Template, m *sabakan.Machine, urls URLs) ([]byte, error) {
	if !slices.Contains(Versions, t.Version) {
		return nil, fmt.Errorf("%w: unsupported Ignition version %q (supported: %s)", sabakan.ErrBadRequest, t.Version, strings.Join(Versions, ", "))
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(t.Template))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: template is not JSON: %v", sabakan.ErrBadRequest, err)
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: template must be a JSON object", sabakan.ErrBadRequest)
	}
	funcs := template.FuncMap{
		"MyURL":      func() string { return urls.HTTP },
		"MyURLHTTPS": func() string { return urls.HTTPS },
		"Metadata": func(key string) (any, error) {
			v, ok := t.Meta[key]
			if !ok {
				return nil, fmt.Errorf("no metadata %q", key)
			}
			return v, nil
		},
		"json": jsonFunc,
		"add":  arith(func(a, b int64) int64 { return a + b }, func(a, b float64) float64 { return a + b }),
		"sub":  arith(func(a, b int64) int64 { return a - b }, func(a, b float64) float64 { return a - b }),
		"mul":  arith(func(a, b int64) int64 { return a * b }, func(a, b float64) float64 { return a * b }),
		"div":  divFunc,
	}
	view := View{Machine: *m, MachineSpec: m.Spec}
	r := &renderer{funcs: funcs, data: view}
	out, err := r.walk("", root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sabakan.ErrBadRequest, err)
	}
	cfg := out.(map[string]any)
	ign, _ := cfg["ignition"].(map[string]any)
	if ign == nil {
		ign = map[string]any{}
	}
	ign["version"] = t.Version + ".0"
	cfg["ignition"] = ign
	return json.Marshal(cfg)
}

type renderer struct {
	funcs template.FuncMap
	data  any
}

func (r *renderer) walk(path string, v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := r.walk(path+"."+k, e)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := r.walk(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case string:
		if strings.HasPrefix(v, "data:") {
			s, err := r.render(path, decodeData(v))
			if err != nil {
				return nil, err
			}
			return "data:," + dataurl.EscapeString(s), nil
		}
		return r.render(path, v)
	default:
		return v, nil
	}
}

// decodeData returns the payload of a data URL. Templates written by hand
// often hold unescaped text ("data:,{{ .Serial }}"), which strict parsing
// rejects: then everything after the first comma is the payload.
func decodeData(s string) string {
	if d, err := dataurl.DecodeString(s); err == nil {
		return string(d.Data)
	}
	_, payload, _ := strings.Cut(s, ",")
	if u, err := url.PathUnescape(payload); err == nil {
		return u
	}
	return payload
}

func (r *renderer) render(path, text string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	name := strings.TrimPrefix(path, ".")
	t, err := template.New(name).Funcs(r.funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, r.data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func jsonFunc(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	if n, ok := toInt(v); ok {
		return float64(n), true
	}
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// arith applies integer arithmetic to two integers and float arithmetic
// otherwise, like the reference's template functions.
func arith(i func(a, b int64) int64, f func(a, b float64) float64) func(a, b any) (any, error) {
	return func(a, b any) (any, error) {
		if x, ok := toInt(a); ok {
			if y, ok := toInt(b); ok {
				return i(x, y), nil
			}
		}
		x, ok1 := toFloat(a)
		y, ok2 := toFloat(b)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("arguments %v and %v are not numbers", a, b)
		}
		return f(x, y), nil
	}
}

func divFunc(a, b any) (any, error) {
	if y, ok := toFloat(b); ok && y == 0 {
		return nil, errors.New("division by zero")
	}
	return arith(func(a, b int64) int64 { return a / b }, func(a, b float64) float64 { return a / b })(a, b)
}

// dummyMachine is what Validate renders a template for.
func dummyMachine() *sabakan.Machine {
	ipam := &sabakan.IPAMConfig{
		MaxNodesInRack: 28, NodeIPv4Pool: "10.69.0.0/16", NodeRangeSize: 6, NodeRangeMask: 26,
		NodeIPPerNode: 3, NodeIndexOffset: 3, NodeGatewayOffset: 1,
		BMCIPv4Pool: "10.72.16.0/20", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1,
	}
	m := sabakan.NewMachine(sabakan.MachineSpec{
		Serial: "dummy0001", Rack: 1, IndexInRack: 5, Role: "worker",
		Labels: map[string]string{}, BMC: sabakan.MachineBMC{Type: "IPMI-2.0"},
		RetireDate: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	ipam.Assign(m)
	return m
}

// Validate renders t for a dummy machine and checks the result: spec 3.x
// with the coreos/ignition/v2 parser (errors and warnings of its report),
// spec 2.x structurally (the v2 module no longer parses 2.x).
func Validate(t *Template) error {
	if len(t.Template) == 0 {
		return fmt.Errorf("%w: template is empty", sabakan.ErrBadRequest)
	}
	out, err := Render(t, dummyMachine(), URLs{HTTP: "http://192.0.2.1:10080", HTTPS: "https://192.0.2.1:10443"})
	if err != nil {
		return fmt.Errorf("template does not render: %w", err)
	}
	if t.Is3() {
		_, rpt, err := v3.ParseCompatibleVersion(out)
		if err == nil && !rpt.IsFatal() {
			// Warnings (unused keys, mostly typos) are refused too.
			for _, e := range rpt.Entries {
				if e.Kind == report.Warn {
					err = errors.New("warning")
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%w: invalid Ignition %s config: %v: %s", sabakan.ErrBadRequest, t.Version, err, strings.TrimSpace(rpt.String()))
		}
		return nil
	}
	return validate2(out)
}

// validate2 checks the shape of a rendered spec 2.x config.
func validate2(raw []byte) error {
	var c struct {
		Storage struct {
			Files []struct {
				Filesystem string `json:"filesystem"`
				Path       string `json:"path"`
				Contents   struct {
					Source string `json:"source"`
				} `json:"contents"`
			} `json:"files"`
		} `json:"storage"`
		Systemd struct {
			Units []struct {
				Name string `json:"name"`
			} `json:"units"`
		} `json:"systemd"`
		Networkd struct {
			Units []struct {
				Name string `json:"name"`
			} `json:"units"`
		} `json:"networkd"`
		Passwd struct {
			Users []struct {
				Name string `json:"name"`
			} `json:"users"`
			Groups []struct {
				Name string `json:"name"`
			} `json:"groups"`
		} `json:"passwd"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%w: invalid Ignition 2.x config: %v", sabakan.ErrBadRequest, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: invalid Ignition 2.x config: "+format, append([]any{sabakan.ErrBadRequest}, args...)...)
	}
	for i, f := range c.Storage.Files {
		if !strings.HasPrefix(f.Path, "/") {
			return bad("storage.files[%d].path %q is not absolute", i, f.Path)
		}
		if f.Filesystem == "" {
			return bad("storage.files[%d] (%s) has no filesystem", i, f.Path)
		}
		if s := f.Contents.Source; strings.HasPrefix(s, "data:") {
			if _, err := dataurl.DecodeString(s); err != nil {
				return bad("storage.files[%d] (%s): bad data URL: %v", i, f.Path, err)
			}
		}
	}
	for i, u := range c.Systemd.Units {
		if u.Name == "" {
			return bad("systemd.units[%d] has no name", i)
		}
	}
	for i, u := range c.Networkd.Units {
		if u.Name == "" {
			return bad("networkd.units[%d] has no name", i)
		}
	}
	for i, u := range c.Passwd.Users {
		if u.Name == "" {
			return bad("passwd.users[%d] has no name", i)
		}
	}
	return nil
}
