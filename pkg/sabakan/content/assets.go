package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// etcd keys of assets.
const (
	assetPrefix  = "assets/"
	assetCounter = "assets"
)

// MaxAssetSize is the largest asset accepted (4 GiB).
const MaxAssetSize = 4 << 30

// MaxURLs bounds the download URLs kept per asset or image.
const MaxURLs = 10

// Errors that the web layer maps to their own statuses.
var (
	// ErrNotLocal: the content exists but this server has no copy yet; the
	// caller redirects to one of its URLs.
	ErrNotLocal = errors.New("content: no local copy yet")
)

// Asset is the metadata of a file served under /api/v1/assets/<name>.
type Asset struct {
	Name        string            `json:"name"`
	ID          int64             `json:"id,string"`
	ContentType string            `json:"content-type"`
	Date        time.Time         `json:"date"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	URLs        []string          `json:"urls"`
	Exists      bool              `json:"exists"`
	Options     map[string]string `json:"options"`
}

var reAssetName = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z._+-]{0,254}$`)

// IsValidAssetName reports whether name can name an asset: letters, digits
// and ._+- not starting with a dot or dash, so that no name is a path
// ("..", "a/b") or hides a file.
func IsValidAssetName(name string) bool { return reAssetName.MatchString(name) }

func checkAssetName(name string) error {
	if !IsValidAssetName(name) {
		return fmt.Errorf("%w: invalid asset name %q: want [0-9a-zA-Z][0-9a-zA-Z._+-]*, at most 255 characters", sabakan.ErrBadRequest, name)
	}
	return nil
}

func (s *Store) assetPath(id int64) string {
	return filepath.Join(s.dir, "assets", strconv.FormatInt(id, 10))
}

func (s *Store) assetURL(name string) string { return s.myURL + "/api/v1/assets/" + name }

// pending holds ids of uploads between install and commit, which the
// replicator must not remove as unreferenced.
var pending sync.Map

// AssetUpload describes a PUT /assets/<name>.
type AssetUpload struct {
	Name        string
	ContentType string
	// Size is the Content-Length; -1 when unknown.
	Size int64
	// SHA256, when set, is the hex digest the content must have.
	SHA256 string
	// Options are stored lower-cased.
	Options map[string]string
}

// PutAsset stores a new version of an asset. It returns whether the name
// was new and the assigned ID. The file is complete on disk before its
// metadata appears in etcd; a failed upload leaves nothing.
func (s *Store) PutAsset(ctx context.Context, u AssetUpload, body io.Reader) (created bool, id int64, err error) {
	if err := checkAssetName(u.Name); err != nil {
		return false, 0, err
	}
	if u.ContentType == "" {
		return false, 0, fmt.Errorf("%w: Content-Type is required", sabakan.ErrBadRequest)
	}
	if u.Size < 0 {
		return false, 0, sabakan.ErrLengthRequired
	}
	if u.Size > MaxAssetSize {
		return false, 0, fmt.Errorf("%w: asset of %d bytes is over the limit of %d", sabakan.ErrTooLarge, u.Size, int64(MaxAssetSize))
	}
	want := strings.ToLower(u.SHA256)
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			return false, 0, fmt.Errorf("%w: X-Sabakan-Asset-SHA256 %q is not a hex SHA-256", sabakan.ErrBadRequest, u.SHA256)
		}
	}

	f, err := s.tempFile()
	if err != nil {
		return false, 0, err
	}
	h := sha256.New()
	if err := copyN(io.MultiWriter(f, h), body, u.Size); err != nil {
		discard(f)
		return false, 0, fmt.Errorf("content: upload of asset %s: %w", u.Name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		discard(f)
		return false, 0, fmt.Errorf("%w: asset %s has SHA-256 %s, X-Sabakan-Asset-SHA256 says %s", sabakan.ErrBadRequest, u.Name, sum, want)
	}

	// Reserve an ID, install the file under it, then publish the metadata.
	if _, err := etcdutil.Update(ctx, s.client.KV, assetCounter, func(cur []byte) ([]byte, error) {
		n, _ := strconv.ParseInt(string(cur), 10, 64)
		id = n + 1
		return []byte(strconv.FormatInt(id, 10)), nil
	}); err != nil {
		discard(f)
		return false, 0, fmt.Errorf("content: assign asset id: %w", err)
	}
	pending.Store(s.assetPath(id), true)
	defer pending.Delete(s.assetPath(id))
	if err := install(f, s.assetPath(id)); err != nil {
		discard(f)
		return false, 0, fmt.Errorf("content: store asset %s: %w", u.Name, err)
	}
	opts := map[string]string{}
	for k, v := range u.Options {
		opts[strings.ToLower(k)] = v
	}
	a := Asset{
		Name: u.Name, ID: id, ContentType: u.ContentType, Date: s.now().UTC(),
		Size: u.Size, SHA256: sum, URLs: []string{s.assetURL(u.Name)}, Options: opts,
	}
	val, _ := json.Marshal(a)
	key := assetPrefix + u.Name
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		os.Remove(s.assetPath(id))
		return false, 0, err
	}
	var rev int64
	if len(resp.Kvs) == 1 {
		rev = resp.Kvs[0].ModRevision
	}
	ops := append([]clientv3.Op{clientv3.OpPut(key, string(val))}, s.auditOps(ctx, sabakan.AuditAssets, u.Name, "put", "new checksum: "+sum)...)
	if _, err := etcdutil.Commit(s.client.Txn(ctx).If(etcdutil.Unchanged(key, rev)).Then(ops...)); err != nil {
		os.Remove(s.assetPath(id))
		if errors.Is(err, etcdutil.ErrConflict) {
			return false, 0, fmt.Errorf("%w: asset %s was changed by a concurrent upload", sabakan.ErrConflict, u.Name)
		}
		return false, 0, err
	}
	s.Kick() // the replaced version's file goes
	return rev == 0, id, nil
}

func (s *Store) getAsset(ctx context.Context, name string) (*Asset, int64, error) {
	if err := checkAssetName(name); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Get(ctx, assetPrefix+name)
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: asset %s", sabakan.ErrNotFound, name)
	}
	a := new(Asset)
	if err := json.Unmarshal(resp.Kvs[0].Value, a); err != nil {
		return nil, 0, fmt.Errorf("content: asset %s: %w", name, err)
	}
	a.Exists = s.hasFile(s.assetPath(a.ID))
	return a, resp.Kvs[0].ModRevision, nil
}

func (s *Store) hasFile(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// GetAsset returns the metadata of an asset.
func (s *Store) GetAsset(ctx context.Context, name string) (*Asset, error) {
	a, _, err := s.getAsset(ctx, name)
	return a, err
}

// OpenAsset returns an asset and its local file. Without a local copy it
// returns the metadata and ErrNotLocal.
func (s *Store) OpenAsset(ctx context.Context, name string) (*Asset, *os.File, error) {
	a, _, err := s.getAsset(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.assetPath(a.ID))
	if errors.Is(err, os.ErrNotExist) {
		return a, nil, ErrNotLocal
	}
	return a, f, err
}

// PeerURL is a URL of a peer that has the content, for a redirect.
func (s *Store) PeerURL(urls []string) (string, bool) {
	for _, u := range urls {
		if u != "" && !strings.HasPrefix(u, s.myURL+"/") {
			return u, true
		}
	}
	return "", false
}

// ListAssets returns the asset names, sorted.
func (s *Store) ListAssets(ctx context.Context) ([]string, error) {
	resp, err := s.client.Get(ctx, assetPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		names = append(names, strings.TrimPrefix(string(kv.Key), assetPrefix))
	}
	slices.Sort(names)
	return names, nil
}

// DeleteAsset removes an asset; every server then removes its file.
func (s *Store) DeleteAsset(ctx context.Context, name string) error {
	a, rev, err := s.getAsset(ctx, name)
	if err != nil {
		return err
	}
	key := assetPrefix + name
	ops := append([]clientv3.Op{clientv3.OpDelete(key)}, s.auditOps(ctx, sabakan.AuditAssets, name, "delete", strconv.FormatInt(a.ID, 10))...)
	if _, err := etcdutil.Commit(s.client.Txn(ctx).If(etcdutil.Unchanged(key, rev)).Then(ops...)); err != nil {
		if errors.Is(err, etcdutil.ErrConflict) {
			return fmt.Errorf("%w: asset %s changed meanwhile", sabakan.ErrConflict, name)
		}
		return err
	}
	s.Kick()
	return nil
}

// listAssetMeta returns every asset's metadata.
func (s *Store) listAssetMeta(ctx context.Context) ([]Asset, error) {
	resp, err := s.client.Get(ctx, assetPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var r []Asset
	for _, kv := range resp.Kvs {
		var a Asset
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			s.log.Warn("content: ignoring malformed asset metadata", "key", string(kv.Key), "error", err)
			continue
		}
		r = append(r, a)
	}
	return r, nil
}
