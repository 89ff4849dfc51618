// Package content stores sabakan's boot content — OS images (kernel +
// initrd), assets and kernel parameters — and replicates it between boot
// servers. Metadata lives in etcd; files live under each server's data
// directory. Each server pulls what it lacks from a peer listed in the
// metadata (temp file, sha256 check, fsync, rename), advertises its own copy,
// and removes what was deleted or replaced. See docs/network-boot.md.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/sabakan"
)

// AuditFunc returns the operation that records an audit entry; it is
// committed in the same transaction as the change it describes. The
// inventory store's AuditOp has this signature.
type AuditFunc func(ctx context.Context, cat sabakan.AuditCategory, instance, action, detail string) clientv3.Op

// Store is one boot server's view of the content.
type Store struct {
	client *clientv3.Client
	dir    string
	myURL  string
	log    *slog.Logger
	audit  AuditFunc
	http   *http.Client
	now    func() time.Time
	kick   chan struct{}
}

// Options configure a Store.
type Options struct {
	// Dir is the data directory; images/, assets/ and tmp/ are made in it.
	Dir string
	// AdvertiseURL is this server's base URL as peers reach it
	// (http://10.69.0.3:10080).
	AdvertiseURL string
	// Log receives replication progress; slog.Default() when nil.
	Log *slog.Logger
	// Audit, when set, adds audit entries to every change.
	Audit AuditFunc
	// HTTPClient fetches from peers; a client without overall timeout when nil.
	HTTPClient *http.Client
}

// New returns a store over the namespaced etcd client.
func New(client *clientv3.Client, o Options) (*Store, error) {
	if o.Dir == "" || o.AdvertiseURL == "" {
		return nil, errors.New("content: data directory and advertise URL are required")
	}
	for _, d := range []string{"images/coreos", "assets", "tmp"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
	}
	// Leftovers of an interrupted write are never valid content.
	if ents, err := os.ReadDir(filepath.Join(o.Dir, "tmp")); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(o.Dir, "tmp", e.Name()))
		}
	}
	s := &Store{
		client: client, dir: o.Dir, myURL: o.AdvertiseURL, log: o.Log, audit: o.Audit,
		http: o.HTTPClient, now: time.Now, kick: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.http == nil {
		s.http = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: time.Minute}}
	}
	return s, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) auditOps(ctx context.Context, cat sabakan.AuditCategory, instance, action, detail string) []clientv3.Op {
	if s.audit == nil {
		return nil
	}
	return []clientv3.Op{s.audit(ctx, cat, instance, action, detail)}
}

// tempFile creates a file in the data directory's tmp/, on the same file
// system as the final place so that rename is atomic.
func (s *Store) tempFile() (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.dir, "tmp"), "part-")
}

// install fsyncs f, renames it to path and fsyncs the directory, so that
// a crash leaves either the old state or the complete new file.
func install(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// discard removes a temp file that will not be installed.
func discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// Kick asks the replicator to reconcile now.
func (s *Store) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// copyN copies exactly n bytes, failing on a short or long source.
func copyN(dst io.Writer, src io.Reader, n int64) error {
	got, err := io.Copy(dst, io.LimitReader(src, n))
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%w: body has %d bytes, Content-Length says %d", sabakan.ErrBadRequest, got, n)
	}
	var one [1]byte
	if k, _ := src.Read(one[:]); k > 0 {
		return fmt.Errorf("%w: body is longer than Content-Length %d", sabakan.ErrBadRequest, n)
	}
	return nil
}
