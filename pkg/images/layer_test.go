package images_test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/images"
)

func mustLayer(t *testing.T, files []images.File) *images.Layer {
	t.Helper()
	l, err := images.NewLayer(files)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func digest(t *testing.T, l *images.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestLayerDeterministic: the digest depends on paths, modes, owners and
// contents only, not on the order of the list nor on the host file's time,
// mode or owner.
func TestLayerDeterministic(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []images.File{
		images.HostFile("/usr/bin/prog", 0o755, src),
		images.Symlink("/bin/prog", "../usr/bin/prog"),
		images.Dir("/tmp", 0o777|fs.ModeSticky),
		images.Bytes("/etc/hostname", 0o644, []byte("x\n")),
	}
	first := digest(t, mustLayer(t, files))

	reversed := make([]images.File, len(files))
	for i, f := range files {
		reversed[len(files)-1-i] = f
	}
	if d := digest(t, mustLayer(t, reversed)); d != first {
		t.Errorf("order changed the digest: %s, then %s", first, d)
	}

	if err := os.Chtimes(src, time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(src, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	if d := digest(t, mustLayer(t, files)); d != first {
		t.Errorf("the host file's time, mode or owner changed the digest: %s, then %s", first, d)
	}

	if err := os.WriteFile(src, []byte("#!/bin/sh\necho bye\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := digest(t, mustLayer(t, files)); d == first {
		t.Errorf("new contents did not change the digest %s", d)
	}
}

// TestLayerContents reads the tar back: sorted entries with their parents,
// fixed times, root owners unless given, modes, links, extended attributes,
// and a gzip header without name or time.
func TestLayerContents(t *testing.T) {
	l := mustLayer(t, []images.File{
		images.Symlink("/b/link", "target"),
		images.Bytes("/a/b/c", 0o640, []byte("abc")),
		images.Dir("/tmp", 0o777|fs.ModeSticky),
		{Path: "/home/u", Mode: fs.ModeDir | 0o700, UID: 1000, GID: 50000},
		{Path: "/cap", Mode: 0o755, Data: []byte("x"), Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}},
	})
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v", zr.Name, zr.ModTime)
	}
	type entry struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
		data     string
	}
	want := []entry{
		{"a/", tar.TypeDir, 0o755, 0, 0, "", ""},
		{"a/b/", tar.TypeDir, 0o755, 0, 0, "", ""},
		{"a/b/c", tar.TypeReg, 0o640, 0, 0, "", "abc"},
		{"b/", tar.TypeDir, 0o755, 0, 0, "", ""},
		{"b/link", tar.TypeSymlink, 0o777, 0, 0, "target", ""},
		{"cap", tar.TypeReg, 0o755, 0, 0, "", "x"},
		{"home/", tar.TypeDir, 0o755, 0, 0, "", ""},
		{"home/u/", tar.TypeDir, 0o700, 1000, 50000, "", ""},
		{"tmp/", tar.TypeDir, 0o1777, 0, 0, "", ""},
	}
	tr := tar.NewReader(zr)
	var got []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(images.Epoch) {
			t.Errorf("%s: time %v, want %v", h.Name, h.ModTime, images.Epoch)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: user %q group %q, want none", h.Name, h.Uname, h.Gname)
		}
		if h.Name == "cap" && h.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00\x00\x02" {
			t.Errorf("cap: PAX records %q, want the capability", h.PAXRecords)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, entry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, string(data)})
	}
	if len(got) != len(want) {
		t.Fatalf("entries:\n%v\nwant\n%v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// DiffID is the digest of the tar.
	u, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := io.ReadAll(u)
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := l.DiffID()
	if h := sha256Hex(tarBytes); "sha256:"+h != diffID.String() {
		t.Errorf("DiffID %s, the tar's digest sha256:%s", diffID, h)
	}
}

func TestLayerErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files []images.File
	}{
		{"relative path", []images.File{images.Bytes("etc/passwd", 0o644, nil)}},
		{"unclean path", []images.File{images.Bytes("/etc/../passwd", 0o644, nil)}},
		{"root", []images.File{images.Dir("/", 0o755)}},
		{"twice", []images.File{images.Bytes("/a", 0o644, nil), images.Bytes("/a", 0o600, nil)}},
		{"parent not a directory", []images.File{images.Bytes("/a", 0o644, nil), images.Bytes("/a/b", 0o644, nil)}},
		{"missing source", []images.File{images.HostFile("/a", 0o644, "/nonexistent/file")}},
		{"link without target", []images.File{{Path: "/a", Mode: fs.ModeSymlink}}},
		{"device", []images.File{{Path: "/dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := images.NewLayer(tt.files); err == nil {
				t.Error("no error")
			}
		})
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
