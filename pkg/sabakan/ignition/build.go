package ignition

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vincent-petithory/dataurl"
	"sigs.k8s.io/yaml"
)

// Source is one YAML file of a template tree (the reference's format):
//
//	version: "3.4"            # default 2.3
//	include: ../base/base.yml # another Source, merged first
//	passwd: passwd.yml        # the Ignition passwd section, as YAML
//	files: [/etc/hostname]    # contents from files/etc/hostname
//	remote_files:             # contents fetched by Ignition
//	  - {name: /opt/bin/x, url: "{{ MyURL }}/api/v1/assets/x", mode: 0755}
//	systemd:                  # units from systemd/<name>
//	  - {name: chronyd.service, enabled: true, mask: false}
//	networkd: [10-node0.netdev] # networkd units from networkd/<name>
//
// Paths are relative to the YAML file's directory. File and unit contents
// are templates themselves, rendered per machine by the server.
type Source struct {
	Version     string       `json:"version"`
	Include     string       `json:"include"`
	Passwd      string       `json:"passwd"`
	Files       []string     `json:"files"`
	RemoteFiles []RemoteFile `json:"remote_files"`
	Systemd     []Unit       `json:"systemd"`
	Networkd    []string     `json:"networkd"`
}

// RemoteFile is a file whose contents Ignition downloads.
type RemoteFile struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	Mode *int   `json:"mode"`
}

// Unit is a systemd unit of a Source.
type Unit struct {
	Name    string `json:"name"`
	Enabled *bool  `json:"enabled"`
	Mask    bool   `json:"mask"`
	// Source, if set, names the file under systemd/ (default: Name).
	Source string `json:"source"`
}

// tree is what the YAML files add up to.
type tree struct {
	version  string
	passwd   map[string]any
	files    []map[string]any
	units    []map[string]any
	networkd []map[string]any
	seen     map[string]bool // includes, to stop cycles
}

// Build reads the YAML tree rooted at file and returns the template, with
// meta as its metadata.
func Build(file string, meta map[string]any) (*Template, error) {
	t := &tree{seen: map[string]bool{}}
	if err := t.load(file); err != nil {
		return nil, err
	}
	if t.version == "" {
		t.version = "2.3"
	}
	if !slices.Contains(Versions, t.version) {
		return nil, fmt.Errorf("%s: unsupported version %q (supported: %s)", file, t.version, strings.Join(Versions, ", "))
	}
	cfg := map[string]any{"ignition": map[string]any{"version": t.version + ".0"}}
	is3 := strings.HasPrefix(t.version, "3.")
	files := t.files
	if is3 {
		// Spec 3 has no networkd section: the units become files.
		for _, u := range t.networkd {
			files = append(files, map[string]any{
				"path": "/etc/systemd/network/" + u["name"].(string), "mode": 0o644,
				"contents": map[string]any{"source": dataURL(u["contents"].(string))},
			})
		}
		for _, f := range files {
			f["overwrite"] = true
		}
	} else {
		for _, f := range files {
			f["filesystem"] = "root"
		}
		if len(t.networkd) > 0 {
			cfg["networkd"] = map[string]any{"units": t.networkd}
		}
	}
	if len(files) > 0 {
		cfg["storage"] = map[string]any{"files": files}
	}
	if len(t.units) > 0 {
		cfg["systemd"] = map[string]any{"units": t.units}
	}
	if t.passwd != nil {
		cfg["passwd"] = t.passwd
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if meta == nil {
		meta = map[string]any{}
	}
	return &Template{Version: t.version, Template: raw, Meta: meta}, nil
}

func dataURL(s string) string { return "data:," + dataurl.EscapeString(s) }

func (t *tree) load(file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	if t.seen[abs] {
		return fmt.Errorf("%s: include cycle", file)
	}
	t.seen[abs] = true
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var src Source
	if err := yaml.UnmarshalStrict(data, &src); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	dir := filepath.Dir(file)
	if src.Include != "" {
		if err := t.load(filepath.Join(dir, src.Include)); err != nil {
			return err
		}
	}
	if src.Version != "" {
		t.version = src.Version
	}
	if src.Passwd != "" {
		data, err := os.ReadFile(filepath.Join(dir, src.Passwd))
		if err != nil {
			return err
		}
		var p map[string]any
		if err := yaml.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("%s: %w", src.Passwd, err)
		}
		t.passwd = p
	}
	for _, p := range src.Files {
		if !path.IsAbs(p) {
			return fmt.Errorf("%s: file %q must be an absolute path", file, p)
		}
		local := filepath.Join(dir, "files", filepath.FromSlash(p))
		data, err := os.ReadFile(local)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		fi, err := os.Stat(local)
		if err != nil {
			return err
		}
		t.files = replace(t.files, "path", p, map[string]any{
			"path": p, "mode": int(fi.Mode().Perm()),
			"contents": map[string]any{"source": dataURL(string(data))},
		})
	}
	for _, rf := range src.RemoteFiles {
		if !path.IsAbs(rf.Name) || rf.URL == "" {
			return fmt.Errorf("%s: remote file %q needs an absolute name and a url", file, rf.Name)
		}
		mode := 0o644
		if rf.Mode != nil {
			mode = *rf.Mode
		}
		t.files = replace(t.files, "path", rf.Name, map[string]any{
			"path": rf.Name, "mode": mode, "contents": map[string]any{"source": rf.URL},
		})
	}
	for _, u := range src.Systemd {
		if u.Name == "" {
			return fmt.Errorf("%s: a systemd unit has no name", file)
		}
		unit := map[string]any{"name": u.Name}
		if u.Mask {
			unit["mask"] = true
		}
		if u.Enabled != nil {
			unit["enabled"] = *u.Enabled
		}
		srcName := u.Source
		if srcName == "" {
			srcName = u.Name
		}
		if data, err := os.ReadFile(filepath.Join(dir, "systemd", srcName)); err == nil {
			unit["contents"] = string(data)
		} else if !os.IsNotExist(err) || u.Source != "" {
			return fmt.Errorf("%s: unit %s: %w", file, u.Name, err)
		}
		t.units = replace(t.units, "name", u.Name, unit)
	}
	for _, n := range src.Networkd {
		data, err := os.ReadFile(filepath.Join(dir, "networkd", n))
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		t.networkd = replace(t.networkd, "name", n, map[string]any{"name": n, "contents": string(data)})
	}
	return nil
}

// replace puts v into list, replacing an element with the same key (an
// including file overrides what it includes).
func replace(list []map[string]any, field, key string, v map[string]any) []map[string]any {
	for i, e := range list {
		if e[field] == key {
			list[i] = v
			return list
		}
	}
	return append(list, v)
}
