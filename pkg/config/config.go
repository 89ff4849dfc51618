// Package config loads a daemon's configuration from flags and an optional
// YAML file. Values come, in rising precedence, from the defaults in the
// struct, the file, and the flags given on the command line, so a systemd
// unit can point at a file and still override one value.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Load reads the YAML file at path (skipped when path is "") into cfg, whose
// fields carry json tags, and then re-applies every flag of fs that was set
// explicitly. fs must already be parsed and its flags bound to cfg's fields.
// Unknown keys in the file are errors, so typos do not pass silently.
func Load(fs *flag.FlagSet, path string, cfg any) error {
	if path == "" {
		return nil
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })

	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	for name, value := range explicit {
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config: flag -%s: %w", name, err)
		}
	}
	return nil
}

// CommaList returns a flag.Value for a list given as comma-separated
// values. Setting it replaces the list, defaults included; blanks around
// values and empty values are dropped.
func CommaList(p *[]string) flag.Value { return (*commaList)(p) }

type commaList []string

func (l *commaList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *commaList) Set(s string) error {
	*l = nil
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*l = append(*l, e)
		}
	}
	return nil
}
