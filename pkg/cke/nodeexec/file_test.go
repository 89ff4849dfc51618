package nodeexec

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openneco/neco/pkg/cke/nodeexec/sshdtest"
)

// names are file names a shell would misread unquoted.
var names = []string{
	"plain", "with space", "it's", `"double"`, `back\slash`, "$HOME", "$(touch pwned)", "`id`",
	"new\nline", "-dash", "*?[a]", "a;b&c|d", "ünïcødé", "{a,b}", "#x", "~",
}

// dirEntries lists dir, failing the test on an error.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	return got
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	// The parent is created, its name needing quoting as well.
	dir := filepath.Join(t.TempDir(), "new dir's", "$(x)")
	for _, name := range names {
		p := filepath.Join(dir, name)
		data := []byte("content of " + name + "\n")
		if err := c.WriteFile(ctxT(t), p, data, 0o640); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q: read %q, %v", name, got, err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode() != 0o640 {
			t.Errorf("%q: mode %v, %v", name, fi.Mode(), err)
		}
	}
	// Nothing but the files: no temporary file left.
	want := slices.Clone(names)
	slices.Sort(want)
	if got := dirEntries(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))

	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("old, longer content"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(p) // a reader of the old file keeps reading it
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	tests := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{name: "executable", data: "#!/bin/sh\n", mode: 0o755},
		{name: "setuid", data: "x", mode: 0o750 | os.ModeSetuid},
		{name: "empty", data: "", mode: 0o600},
	}
	for _, tt := range tests {
		if err := c.WriteFile(ctxT(t), p, []byte(tt.data), tt.mode); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != tt.data || fi.Mode() != tt.mode {
			t.Errorf("%s: %q mode %v, want %q mode %v", tt.name, got, fi.Mode(), tt.data, tt.mode)
		}
	}
	// Renamed over, not rewritten in place.
	if b, _ := io.ReadAll(old); string(b) != "old, longer content" {
		t.Errorf("the old file now reads %q", b)
	}
}

func TestWriteFileErrors(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{"relative", "/", "/a/../b", "/a/", "/a\x00b", ""} {
		if err := c.WriteFile(ctxT(t), p, nil, 0o600); err == nil || !strings.Contains(err.Error(), "not an absolute, clean file path") {
			t.Errorf("%q: error %v, want a bad path", p, err)
		}
	}

	// The parent is a file.
	err := c.WriteFile(ctxT(t), filepath.Join(file, "x"), nil, 0o600)
	var exit *ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(exit.Stderr), "mkdir") {
		t.Errorf("error %v, want mkdir's", err)
	}
	if strings.Contains(err.Error(), pgidMarker) || strings.Contains(err.Error(), "set -eu") {
		t.Errorf("error %q shows the machinery", err)
	}
}

func TestInstall(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))
	dir := t.TempDir()

	data := make([]byte, 5<<20+123)
	rand.Read(data)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	p := filepath.Join(dir, "bin", "kubelet")

	var mu sync.Mutex
	var dones []int64
	err := c.Install(ctxT(t), p, bytes.NewReader(data), int64(len(data)), strings.ToUpper(good), func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if total != int64(len(data)) {
			t.Errorf("progress total %d", total)
		}
		dones = append(dones, done)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("installed %d bytes, %v", len(got), err)
	}
	if fi, _ := os.Stat(p); fi.Mode() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	mu.Lock()
	if len(dones) < 2 || !slices.IsSorted(dones) || dones[len(dones)-1] != int64(len(data)) {
		t.Errorf("progress %d calls, ending %v", len(dones), dones[max(0, len(dones)-1):])
	}
	mu.Unlock()

	// A wrong checksum installs nothing and leaves no temporary file;
	// the installed file stays.
	other := sha256.Sum256([]byte("other"))
	err = c.Install(ctxT(t), p, bytes.NewReader(make([]byte, 1<<20)), 1<<20, hex.EncodeToString(other[:]), nil)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("error %v, want ErrChecksumMismatch", err)
	}
	p2 := filepath.Join(dir, "bin", "kube-proxy")
	err = c.Install(ctxT(t), p2, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(other[:]), nil)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("error %v, want ErrChecksumMismatch", err)
	}
	// A source shorter than announced.
	err = c.Install(ctxT(t), p2, bytes.NewReader(data[:1000]), int64(len(data)), good, nil)
	if err == nil || !strings.Contains(err.Error(), "source ended after 1000 of") {
		t.Errorf("error %v, want a short source", err)
	}
	// A source that fails.
	broken := io.MultiReader(bytes.NewReader(data[:1000]), iotestErrReader{})
	err = c.Install(ctxT(t), p2, broken, int64(len(data)), good, nil)
	if !errors.Is(err, errBrokenSource) {
		t.Errorf("error %v, want the source's", err)
	}
	if got := dirEntries(t, filepath.Join(dir, "bin")); !slices.Equal(got, []string{"kubelet"}) {
		t.Errorf("directory holds %q, want only kubelet", got)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("kubelet changed")
	}

	for _, sum := range []string{"", "xyz", good[:62]} {
		if err := c.Install(ctxT(t), p2, bytes.NewReader(nil), 0, sum, nil); err == nil || !strings.Contains(err.Error(), "bad sha256") {
			t.Errorf("sha256 %q: error %v", sum, err)
		}
	}
}

var errBrokenSource = errors.New("broken source")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBrokenSource }

// stallingReader gives n bytes, then blocks until ctx ends.
type stallingReader struct {
	ctx context.Context
	n   int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func TestInstallCancel(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t)
	c := dialT(t, srv, config(srv))
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(ctxT(t))
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		src := &stallingReader{ctx: ctxT(t), n: 1 << 20}
		errc <- c.Install(ctx, filepath.Join(dir, "f"), src, 100<<20, strings.Repeat("0", 64), func(done, total int64) {
			if done == 1<<20 {
				once.Do(cancel)
			}
		})
	}()
	if err := waitErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	// The node removes its temporary file.
	eventually(t, "cleaned up", func() bool { return len(dirEntries(t, dir)) == 0 })
}
