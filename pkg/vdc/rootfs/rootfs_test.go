package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKey(t *testing.T) {
	a := Spec{Suite: "bookworm", Variant: "minbase", Mirror: "http://m", Packages: []string{"b", "a", "a"}}
	b := Spec{Suite: "bookworm", Variant: "minbase", Mirror: "http://m", Packages: []string{"a", "b"}}
	if a.Key() != b.Key() {
		t.Error("package order or duplicates change the key")
	}
	c := b
	c.Packages = []string{"a", "b", "c"}
	if c.Key() == b.Key() {
		t.Error("an added package does not change the key")
	}
	d := b
	d.Mirror = "http://other"
	if d.Key() == b.Key() {
		t.Error("the mirror does not change the key")
	}
}

func TestAptMirror(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		suite string
		want  string
	}{
		{"deb822", map[string]string{"sources.list.d/debian.sources": "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"},
			"bookworm", "http://mirror.example/debian"},
		{"deb822 disabled and deb-src skipped", map[string]string{"sources.list.d/a.sources": "Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n\nEnabled: no\nTypes: deb\nURIs: http://off.example/\nSuites: bookworm\n\nTypes: deb\nURIs: http://on.example/debian\nSuites: bookworm\n"},
			"bookworm", "http://on.example/debian"},
		{"one-line with options", map[string]string{"sources.list": "# x\ndeb-src http://src.example bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"},
			"bookworm", "http://one.example/debian"},
		{"other suite only", map[string]string{"sources.list": "deb http://one.example/debian bullseye main\n"}, "bookworm", ""},
		{"cdrom ignored", map[string]string{"sources.list": "deb cdrom:[Debian]/ bookworm main\n"}, "bookworm", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, data := range tt.files {
				full := filepath.Join(root, "etc/apt", p)
				os.MkdirAll(filepath.Dir(full), 0o755)
				os.WriteFile(full, []byte(data), 0o644)
			}
			got, err := AptMirror(root, tt.suite)
			if tt.want == "" {
				if err == nil {
					t.Errorf("AptMirror = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("AptMirror = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMountsUnderEscapes(t *testing.T) {
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Errorf("unescape = %q", got)
	}
}

func FuzzMirror(f *testing.F) {
	f.Add("Types: deb\nURIs: http://m/debian\nSuites: bookworm\n", "deb [arch=amd64] http://one/debian bookworm main\n")
	f.Add("Enabled: no\n\n", "deb [ x\n")
	f.Fuzz(func(t *testing.T, deb822, oneLine string) {
		for _, m := range []string{mirrorDeb822(deb822, "bookworm"), mirrorOneLine(oneLine, "bookworm")} {
			if m != "" && !isHTTP(m) {
				t.Fatalf("mirror %q is not an http(s) URL", m)
			}
		}
	})
}
