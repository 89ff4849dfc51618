package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
)

// resyncInterval is how often a full reconcile runs without any change
// notification, to retry failed pulls.
const resyncInterval = time.Minute

// Plan is what a server must do to match the content index: the items it
// lacks and the local files nothing refers to.
type Plan struct {
	Fetch  []string // keys of wanted items that are not local
	Remove []string // local keys that are not wanted
}

// Decide compares the wanted keys with the local ones. Keys in busy (an
// upload between writing its file and publishing it) are never removed.
func Decide(wanted, local []string, busy func(string) bool) Plan {
	var p Plan
	for _, w := range wanted {
		if !slices.Contains(local, w) {
			p.Fetch = append(p.Fetch, w)
		}
	}
	for _, l := range local {
		if !slices.Contains(wanted, l) && !busy(l) {
			p.Remove = append(p.Remove, l)
		}
	}
	return p
}

// Run replicates content until ctx ends: it reconciles at start (catching
// up after downtime), on every change of the index in etcd, and every
// minute.
func (s *Store) Run(ctx context.Context) error {
	for _, prefix := range []string{"images/", assetPrefix} {
		go func() {
			for ctx.Err() == nil {
				for range s.client.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix()) {
					s.Kick()
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	s.Kick()
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-t.C:
		}
		if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("content replication incomplete; retrying later", "error", err)
		}
	}
}

func isBusy(path string) bool { _, ok := pending.Load(path); return ok }

// Reconcile makes this server's files match the index once.
func (s *Store) Reconcile(ctx context.Context) error {
	return errors.Join(s.reconcileImages(ctx, OSCoreOS), s.reconcileAssets(ctx))
}

func localNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func (s *Store) reconcileImages(ctx context.Context, osName string) error {
	dir := filepath.Join(s.dir, "images", osName)
	found, busy := s.localSnapshot(dir)
	st, err := s.readIndex(ctx, osName)
	if err != nil {
		return err
	}
	byID := map[string]Image{}
	var wanted []string
	for _, img := range st.images {
		byID[img.ID] = img
		wanted = append(wanted, img.ID)
	}
	var local []string
	for _, id := range found {
		if img, ok := byID[id]; !ok || s.hasImage(osName, img) {
			local = append(local, id)
		}
	}
	plan := Decide(wanted, local, busy)
	for _, id := range plan.Remove {
		s.log.Info("content: removing image", "os", osName, "id", id)
		os.RemoveAll(s.imageDir(osName, id))
	}
	var errs []error
	slices.Reverse(plan.Fetch) // newest first: it is the one that boots
	for _, id := range plan.Fetch {
		if err := s.pullImage(ctx, osName, byID[id]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) reconcileAssets(ctx context.Context) error {
	dir := filepath.Join(s.dir, "assets")
	local, busy := s.localSnapshot(dir)
	assets, err := s.listAssetMeta(ctx)
	if err != nil {
		return err
	}
	byID := map[string]Asset{}
	for _, a := range assets {
		byID[strconv.FormatInt(a.ID, 10)] = a
	}
	plan := Decide(slices.Sorted(maps.Keys(byID)), local, busy)
	for _, id := range plan.Remove {
		s.log.Info("content: removing asset file", "id", id)
		os.Remove(filepath.Join(dir, id))
	}
	var errs []error
	for _, id := range plan.Fetch {
		if err := s.pullAsset(ctx, byID[id]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// localSnapshot lists the entries of dir and which of them a write in
// progress holds, in that order and both before the caller reads the
// index: an upload marks its file busy before installing it and clears the
// mark only after its index entry is committed, so a file found here is
// either busy in the snapshot or already in the index read afterwards.
// (Reading the index first let a reconcile that raced an upload on this
// server delete the file it had just installed: the asset was then on no
// server at all.)
func (s *Store) localSnapshot(dir string) (names []string, busy func(string) bool) {
	names = localNames(dir)
	held := map[string]bool{}
	for _, n := range names {
		if isBusy(filepath.Join(dir, n)) {
			held[n] = true
		}
	}
	return names, func(n string) bool { return held[n] }
}

// get opens the first peer URL that answers 200.
func (s *Store) get(ctx context.Context, urls []string, check func(*http.Response) error) (*http.Response, error) {
	var errs []error
	for _, u := range urls {
		if u == "" || u == s.myURL || len(u) > len(s.myURL) && u[:len(s.myURL)+1] == s.myURL+"/" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := s.http.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("GET %s: %s", u, resp.Status))
			continue
		}
		if err := check(resp); err != nil {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("GET %s: %w", u, err))
			continue
		}
		return resp, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("no peer URL")
	}
	return nil, errors.Join(errs...)
}

func (s *Store) pullAsset(ctx context.Context, a Asset) error {
	if s.hasFile(s.assetPath(a.ID)) {
		return nil // installed (renamed complete) since the reconcile listed the files
	}
	resp, err := s.get(ctx, a.URLs, func(r *http.Response) error {
		if got := r.Header.Get("X-Sabakan-Asset-ID"); got != strconv.FormatInt(a.ID, 10) {
			return fmt.Errorf("peer serves version %s, want %d", got, a.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("content: pull asset %s: %w", a.Name, err)
	}
	defer resp.Body.Close()
	f, err := s.tempFile()
	if err != nil {
		return err
	}
	h := sha256.New()
	pr := newProgress(s.log, "asset "+a.Name, a.Size, resp.Body)
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(pr, a.Size+1))
	pr.done(err)
	if err != nil {
		discard(f)
		return fmt.Errorf("content: pull asset %s: %w", a.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != a.Size || sum != a.SHA256 {
		discard(f)
		return fmt.Errorf("content: pull asset %s: got %d bytes with SHA-256 %s, want %d bytes with %s", a.Name, n, sum, a.Size, a.SHA256)
	}
	path := s.assetPath(a.ID)
	pending.Store(path, true)
	defer pending.Delete(path)
	if err := install(f, path); err != nil {
		discard(f)
		return err
	}
	// Advertise the copy, unless the asset changed meanwhile.
	_, err = etcdutil.Update(ctx, s.client.KV, assetPrefix+a.Name, func(cur []byte) ([]byte, error) {
		var now Asset
		if cur == nil || json.Unmarshal(cur, &now) != nil || now.ID != a.ID {
			return nil, etcdutil.ErrNoChange
		}
		url := s.assetURL(a.Name)
		if slices.Contains(now.URLs, url) || len(now.URLs) >= MaxURLs {
			return nil, etcdutil.ErrNoChange
		}
		now.URLs = append(now.URLs, url)
		now.Exists = false
		return json.Marshal(now)
	})
	return err
}

func (s *Store) pullImage(ctx context.Context, osName string, img Image) error {
	if s.hasImage(osName, img) {
		return nil // installed since the reconcile listed the images
	}
	resp, err := s.get(ctx, img.URLs, func(*http.Response) error { return nil })
	if err != nil {
		return fmt.Errorf("content: pull image %s: %w", img.ID, err)
	}
	defer resp.Body.Close()
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pr := newProgress(s.log, "image "+img.ID, img.Size, resp.Body)
	sums, _, err := extractImage(pr, tmp)
	pr.done(err)
	if err != nil {
		return fmt.Errorf("content: pull image %s: %w", img.ID, err)
	}
	for name, want := range img.SHA256 {
		if sums[name] != want {
			return fmt.Errorf("content: pull image %s: %s has SHA-256 %s, want %s", img.ID, name, sums[name], want)
		}
	}
	dst := s.imageDir(osName, img.ID)
	pending.Store(dst, true)
	defer pending.Delete(dst)
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	syncDir(filepath.Dir(dst))
	return etcdutil.Retry(ctx, func(ctx context.Context) error {
		st, err := s.readIndex(ctx, osName)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(st.images, func(x Image) bool { return x.ID == img.ID })
		url := s.imageURL(osName, img.ID)
		if i < 0 || slices.Contains(st.images[i].URLs, url) || len(st.images[i].URLs) >= MaxURLs {
			return nil
		}
		st.images = slices.Clone(st.images)
		st.images[i].URLs = append(slices.Clone(st.images[i].URLs), url)
		st.images[i].Exists = false
		return s.writeIndex(ctx, osName, st)
	})
}

// progress logs a transfer's progress and ETA every few seconds.
type progress struct {
	log   *slog.Logger
	what  string
	total int64
	r     io.Reader
	n     int64
	start time.Time
	last  time.Time
}

const progressEvery = 5 * time.Second

func newProgress(log *slog.Logger, what string, total int64, r io.Reader) *progress {
	now := time.Now()
	log.Info("content: pulling", "what", what, "bytes", total)
	return &progress{log: log, what: what, total: total, r: r, start: now, last: now}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		elapsed := now.Sub(p.start).Seconds()
		rate := float64(p.n) / elapsed
		attrs := []any{"what", p.what, "bytes", p.n, "total", p.total, "mib_per_s", rate / (1 << 20)}
		if p.total > 0 && rate > 0 {
			attrs = append(attrs, "percent", 100*p.n/p.total, "eta", time.Duration(float64(p.total-p.n)/rate*float64(time.Second)).Round(time.Second).String())
		}
		p.log.Info("content: pull progress", attrs...)
	}
	return n, err
}

func (p *progress) done(err error) {
	if err != nil {
		p.log.Warn("content: pull failed", "what", p.what, "bytes", p.n, "error", err)
		return
	}
	p.log.Info("content: pulled", "what", p.what, "bytes", p.n, "seconds", time.Since(p.start).Seconds())
}
