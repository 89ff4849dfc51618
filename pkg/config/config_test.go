package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sample struct {
	HTTP     string   `json:"http"`
	AllowIPs []string `json:"allow-ips"`
	Debug    bool     `json:"debug"`
}

func TestLoadPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(path, []byte("http: 0.0.0.0:1\nallow-ips: [10.0.0.0/8]\ndebug: true\n"), 0o644)

	cfg := sample{HTTP: "default", Debug: false}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, "")
	fs.BoolVar(&cfg.Debug, "debug", cfg.Debug, "")
	if err := fs.Parse([]string{"-http", "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if err := Load(fs, path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:2" {
		t.Errorf("http = %s: an explicit flag must win over the file", cfg.HTTP)
	}
	if !cfg.Debug || len(cfg.AllowIPs) != 1 {
		t.Errorf("file values not applied: %+v", cfg)
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(path, []byte("htp: typo\n"), 0o644)
	var cfg sample
	if err := Load(flag.NewFlagSet("x", flag.ContinueOnError), path, &cfg); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestCommaList(t *testing.T) {
	list := []string{"default"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(CommaList(&list), "l", "")
	if err := fs.Parse([]string{"-l", " a, b,,c "}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(list, "|") != "a|b|c" {
		t.Errorf("list = %q, want the default replaced by a, b, c", list)
	}
	if got := fs.Lookup("l").Value.String(); got != "a,b,c" {
		t.Errorf("String() = %q", got)
	}
}
