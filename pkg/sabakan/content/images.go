package content

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Image file names inside the tar and on disk.
const (
	KernelFile = "kernel"
	InitrdFile = "initrd.gz"
)

// Limits of the image index (the reference's).
const (
	MaxImages        = 5
	MaxDeletedImages = 10
	// MaxImageSize bounds an image tar.
	MaxImageSize = 4 << 30
)

// OSCoreOS is the only OS the API serves, as in the reference.
const OSCoreOS = "coreos"

// Image is an entry of the image index.
type Image struct {
	ID     string    `json:"id"`
	Date   time.Time `json:"date"`
	Size   int64     `json:"size"`
	URLs   []string  `json:"urls"`
	Exists bool      `json:"exists"`
	// SHA256 holds the digest of each file, checked by replication.
	SHA256 map[string]string `json:"sha256,omitempty"`
}

var reImageID = regexp.MustCompile(`^[0-9a-zA-Z.-]{1,128}$`)

func checkImage(osName, id string) error {
	if osName != OSCoreOS {
		return fmt.Errorf("%w: OS %q (only %q is served)", sabakan.ErrNotFound, osName, OSCoreOS)
	}
	if !reImageID.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("%w: invalid image id %q: want [0-9a-zA-Z.-]+", sabakan.ErrBadRequest, id)
	}
	return nil
}

func indexKey(osName string) string   { return "images/" + osName }
func deletedKey(osName string) string { return "images/" + osName + "/deleted" }

func (s *Store) imageDir(osName, id string) string { return filepath.Join(s.dir, "images", osName, id) }

func (s *Store) imageURL(osName, id string) string {
	return s.myURL + "/api/v1/images/" + osName + "/" + id
}

// indexState is the index and the deleted ids at one revision each.
type indexState struct {
	images    []Image
	deleted   []string
	rev, drev int64
}

func (s *Store) readIndex(ctx context.Context, osName string) (*indexState, error) {
	resp, err := s.client.Txn(ctx).Then(clientv3.OpGet(indexKey(osName)), clientv3.OpGet(deletedKey(osName))).Commit()
	if err != nil {
		return nil, err
	}
	st := &indexState{}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		st.rev = kvs[0].ModRevision
		if err := json.Unmarshal(kvs[0].Value, &st.images); err != nil {
			return nil, fmt.Errorf("content: image index: %w", err)
		}
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		st.drev = kvs[0].ModRevision
		if err := json.Unmarshal(kvs[0].Value, &st.deleted); err != nil {
			return nil, fmt.Errorf("content: deleted images: %w", err)
		}
	}
	return st, nil
}

func (s *Store) writeIndex(ctx context.Context, osName string, st *indexState, extra ...clientv3.Op) error {
	iv, _ := json.Marshal(st.images)
	dv, _ := json.Marshal(st.deleted)
	ops := append([]clientv3.Op{clientv3.OpPut(indexKey(osName), string(iv)), clientv3.OpPut(deletedKey(osName), string(dv))}, extra...)
	_, err := etcdutil.Commit(s.client.Txn(ctx).
		If(etcdutil.Unchanged(indexKey(osName), st.rev), etcdutil.Unchanged(deletedKey(osName), st.drev)).
		Then(ops...))
	return err
}

// addImage is the pure index update of an upload: it appends img, drops
// the oldest beyond MaxImages into the deleted list, and refuses an id that
// exists or was deleted.
func addImage(images []Image, deleted []string, img Image) ([]Image, []string, error) {
	if slices.Contains(deleted, img.ID) {
		return nil, nil, fmt.Errorf("%w: image %s was deleted; use a new id", sabakan.ErrConflict, img.ID)
	}
	if slices.ContainsFunc(images, func(i Image) bool { return i.ID == img.ID }) {
		return nil, nil, fmt.Errorf("%w: image %s exists", sabakan.ErrConflict, img.ID)
	}
	images = append(slices.Clone(images), img)
	for len(images) > MaxImages {
		deleted = rememberDeleted(deleted, images[0].ID)
		images = images[1:]
	}
	return images, deleted, nil
}

func rememberDeleted(deleted []string, id string) []string {
	deleted = append(slices.Clone(deleted), id)
	if len(deleted) > MaxDeletedImages {
		deleted = deleted[len(deleted)-MaxDeletedImages:]
	}
	return deleted
}

// PutImage stores an image from a tar holding exactly "kernel" and
// "initrd.gz". The files are on disk before the index names them.
func (s *Store) PutImage(ctx context.Context, osName, id string, body io.Reader) error {
	if err := checkImage(osName, id); err != nil {
		return err
	}
	st, err := s.readIndex(ctx, osName)
	if err != nil {
		return err
	}
	if _, _, err := addImage(st.images, st.deleted, Image{ID: id}); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sums, size, err := extractImage(io.LimitReader(body, MaxImageSize+1), tmp)
	if err != nil {
		return fmt.Errorf("content: image %s: %w", id, err)
	}
	dst := s.imageDir(osName, id)
	pending.Store(dst, true)
	defer pending.Delete(dst)
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	syncDir(filepath.Dir(dst))
	img := Image{ID: id, Date: s.now().UTC(), Size: size, URLs: []string{s.imageURL(osName, id)}, SHA256: sums}
	err = etcdutil.Retry(ctx, func(ctx context.Context) error {
		st, err := s.readIndex(ctx, osName)
		if err != nil {
			return err
		}
		st.images, st.deleted, err = addImage(st.images, st.deleted, img)
		if err != nil {
			return err
		}
		return s.writeIndex(ctx, osName, st, s.auditOps(ctx, sabakan.AuditImage, osName, "upload", "id="+id)...)
	})
	if err != nil {
		os.RemoveAll(dst)
		return err
	}
	s.Kick()
	return nil
}

// WriteImage writes an image tar of kernel and initrd to w, the format
// PutImage reads.
func WriteImage(w io.Writer, kernel, initrd []byte) error {
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{{KernelFile, kernel}, {InitrdFile, initrd}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// extractImage reads an image tar into dir, checking its shape and digests.
func extractImage(r io.Reader, dir string) (map[string]string, int64, error) {
	tr := tar.NewReader(r)
	sums := map[string]string{}
	var size int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) && size > MaxImageSize {
				return nil, 0, fmt.Errorf("%w: image tar is over %d bytes", sabakan.ErrTooLarge, int64(MaxImageSize))
			}
			return nil, 0, fmt.Errorf("%w: malformed tar: %v", sabakan.ErrBadRequest, err)
		}
		name := path.Clean(hdr.Name)
		if name != KernelFile && name != InitrdFile {
			return nil, 0, fmt.Errorf("%w: unexpected tar entry %q: want only %s and %s", sabakan.ErrBadRequest, hdr.Name, KernelFile, InitrdFile)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, 0, fmt.Errorf("%w: tar entry %s is not a regular file", sabakan.ErrBadRequest, name)
		}
		if _, dup := sums[name]; dup {
			return nil, 0, fmt.Errorf("%w: tar holds %s twice", sabakan.ErrBadRequest, name)
		}
		if size += hdr.Size; size > MaxImageSize {
			return nil, 0, fmt.Errorf("%w: image is over %d bytes", sabakan.ErrTooLarge, int64(MaxImageSize))
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(f, h), tr); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("%w: malformed tar: %v", sabakan.ErrBadRequest, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, 0, err
		}
		f.Close()
		sums[name] = hex.EncodeToString(h.Sum(nil))
	}
	for _, want := range []string{KernelFile, InitrdFile} {
		if _, ok := sums[want]; !ok {
			return nil, 0, fmt.Errorf("%w: tar lacks %s", sabakan.ErrBadRequest, want)
		}
	}
	return sums, size, nil
}

// ImageIndex returns the index, oldest first, with Exists set for the
// images this server holds.
func (s *Store) ImageIndex(ctx context.Context, osName string) ([]Image, error) {
	if err := checkImage(osName, "x"); err != nil {
		return nil, err
	}
	st, err := s.readIndex(ctx, osName)
	if err != nil {
		return nil, err
	}
	images := st.images
	if images == nil {
		images = []Image{}
	}
	for i := range images {
		images[i].Exists = s.hasImage(osName, images[i])
	}
	return images, nil
}

func (s *Store) hasImage(osName string, img Image) bool {
	return s.hasFile(filepath.Join(s.imageDir(osName, img.ID), KernelFile)) &&
		s.hasFile(filepath.Join(s.imageDir(osName, img.ID), InitrdFile))
}

// DeleteImage removes an image from the index and remembers its id.
func (s *Store) DeleteImage(ctx context.Context, osName, id string) error {
	if err := checkImage(osName, id); err != nil {
		return err
	}
	err := etcdutil.Retry(ctx, func(ctx context.Context) error {
		st, err := s.readIndex(ctx, osName)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(st.images, func(img Image) bool { return img.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: image %s", sabakan.ErrNotFound, id)
		}
		st.images = slices.Delete(slices.Clone(st.images), i, i+1)
		st.deleted = rememberDeleted(st.deleted, id)
		return s.writeIndex(ctx, osName, st, s.auditOps(ctx, sabakan.AuditImage, osName, "delete", "id="+id)...)
	})
	if err != nil {
		return err
	}
	s.Kick()
	return nil
}

// WriteImageTar streams a local image as a tar of kernel and initrd.gz.
func (s *Store) WriteImageTar(ctx context.Context, osName, id string, w io.Writer) error {
	img, err := s.image(ctx, osName, id)
	if err != nil {
		return err
	}
	if !s.hasImage(osName, *img) {
		return ErrNotLocal
	}
	tw := tar.NewWriter(w)
	for _, name := range []string{KernelFile, InitrdFile} {
		f, err := os.Open(filepath.Join(s.imageDir(osName, id), name))
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: img.Date, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

func (s *Store) image(ctx context.Context, osName, id string) (*Image, error) {
	if err := checkImage(osName, id); err != nil {
		return nil, err
	}
	st, err := s.readIndex(ctx, osName)
	if err != nil {
		return nil, err
	}
	for _, img := range st.images {
		if img.ID == id {
			img.Exists = s.hasImage(osName, img)
			return &img, nil
		}
	}
	return nil, fmt.Errorf("%w: image %s", sabakan.ErrNotFound, id)
}

// Image returns one index entry.
func (s *Store) Image(ctx context.Context, osName, id string) (*Image, error) {
	return s.image(ctx, osName, id)
}

// NewestLocalFile returns the path of file (KernelFile or InitrdFile) of
// the newest image this server holds.
func (s *Store) NewestLocalFile(ctx context.Context, osName, file string) (string, *Image, error) {
	images, err := s.ImageIndex(ctx, osName)
	if err != nil {
		return "", nil, err
	}
	for i := len(images) - 1; i >= 0; i-- {
		if images[i].Exists {
			return filepath.Join(s.imageDir(osName, images[i].ID), file), &images[i], nil
		}
	}
	return "", nil, fmt.Errorf("%w: no %s image on this server", sabakan.ErrNotFound, osName)
}
