package nodeexec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
)

// Exit statuses of installScript.
const (
	exitShort    = 65 // fewer bytes than announced arrived
	exitChecksum = 66 // the bytes that arrived have another sha256
)

// installScript receives a file on standard input into a temporary file
// next to its destination, checks its size and sha256, syncs it to disk
// and renames it into place. On any failure, or SIGTERM, it removes the
// temporary file, leaving the destination as it was.
const installScript = `set -eu
dir=%[1]s
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.nodeexec.XXXXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 143' TERM HUP INT
cat >"$tmp"
size=$(stat -c %%s -- "$tmp")
if [ "$size" != %[2]d ]; then
	echo "nodeexec: received $size of %[2]d bytes" >&2
	exit %[5]d
fi
sum=$(sha256sum <"$tmp")
sum=${sum%%%% *}
if [ "$sum" != %[3]s ]; then
	echo "nodeexec: received data with sha256 $sum, want %[3]s" >&2
	exit %[6]d
fi
chmod %[4]s -- "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" %[7]s
trap - EXIT
sync -- "$dir"
`

// WriteFile writes data to path on the node atomically: readers see the
// old file or the complete new one, with mode, never a part. The parent
// directory is created if needed. path must be absolute and clean.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	sum := sha256.Sum256(data)
	err := c.install(ctx, "write", path, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]), mode, nil)
	if err != nil {
		return fmt.Errorf("nodeexec: %s: write %q: %w", c.addr, path, err)
	}
	return nil
}

// Install streams size bytes from src to path on the node, atomically like
// WriteFile, as an executable (mode 0755), for binaries too large to hold
// in memory. The node checks their sha256 against sha256hex before the file
// takes path's place: on a mismatch (ErrChecksumMismatch), as on any other
// failure, path is left as it was and no temporary file stays behind.
//
// progress, if not nil, is called with the bytes sent so far, from another
// goroutine, never after Install returns. A Read of src in progress when a
// cancelled Install returns may still complete.
func (c *Client) Install(ctx context.Context, path string, src io.Reader, size int64, sha256hex string, progress func(done, total int64)) error {
	err := c.install(ctx, "install", path, src, size, sha256hex, 0o755, progress)
	if err != nil {
		return fmt.Errorf("nodeexec: %s: install %q: %w", c.addr, path, err)
	}
	return nil
}

// install is WriteFile and Install; op names it in an ExitError.
func (c *Client) install(ctx context.Context, op, p string, src io.Reader, size int64, sha256hex string, mode os.FileMode, progress func(done, total int64)) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	sha256hex = strings.ToLower(sha256hex)
	if b, err := hex.DecodeString(sha256hex); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("bad sha256 %q", sha256hex)
	}
	script := fmt.Sprintf(installScript, shellQuote(path.Dir(p)), size, sha256hex,
		fileMode(mode), exitShort, exitChecksum, shellQuote(p))

	in := &countingReader{r: io.LimitReader(src, size), total: size, progress: progress}
	defer in.finish()
	_, err := c.run(ctx, script, in)
	var exit *ExitError
	if !errors.As(err, &exit) {
		return err
	}
	exit.Cmd = op + " " + p // the script would say nothing to a reader
	n, readErr := in.result()
	switch {
	case readErr != nil:
		return fmt.Errorf("read source: %w", readErr)
	case exit.Status == exitShort && n < size:
		return fmt.Errorf("source ended after %d of %d bytes", n, size)
	case exit.Status == exitChecksum:
		return fmt.Errorf("%w (%w)", ErrChecksumMismatch, exit)
	}
	return exit
}

// checkPath accepts absolute, clean paths of files.
func checkPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q is not an absolute, clean file path", p)
	}
	return nil
}

// fileMode is mode in chmod's octal notation.
func fileMode(mode os.FileMode) string {
	m := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%04o", m)
}

// countingReader counts what it reads, reports progress and remembers the
// first read error other than EOF. After finish it reports nothing more.
type countingReader struct {
	r        io.Reader
	total    int64
	progress func(done, total int64)

	mu       sync.Mutex
	n        int64
	err      error
	finished bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n += int64(n)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	if n > 0 && r.progress != nil && !r.finished {
		r.progress(r.n, r.total)
	}
	return n, err
}

func (r *countingReader) result() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.err
}

func (r *countingReader) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = true
}
