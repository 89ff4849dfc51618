package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations on each manifest descriptor of a layout's index.json naming
// the image: the OCI one, and the one containerd's importer reads.
const (
	AnnotationRefName        = "org.opencontainers.image.ref.name"
	AnnotationContainerdName = "io.containerd.image.name"
)

// Platform is the platform of every image this package builds.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Set is a collection of images by full name (registry.k8s.io/pause:3.10.2)
// that is written into one OCI image layout directory; blobs that images
// share are stored once.
type Set struct {
	images map[string]v1.Image
}

// Entry is one image of a layout directory.
type Entry struct {
	Name   string  // full name with the upstream registry and the tag
	Digest v1.Hash // manifest digest
	Size   int64   // manifest, config and layers (compressed), shared blobs counted in each image
}

// Add adds img under name, a full reference with a registry and a tag.
func (s *Set) Add(ref string, img v1.Image) error {
	if _, err := parseTag(ref); err != nil {
		return err
	}
	if s.images == nil {
		s.images = make(map[string]v1.Image)
	}
	if _, dup := s.images[ref]; dup {
		return fmt.Errorf("images: %s added twice", ref)
	}
	s.images[ref] = img
	return nil
}

// parseTag accepts only fully qualified tags: registry host, repository and
// tag, no digest, so that names mean the same everywhere.
func parseTag(ref string) (name.Tag, error) {
	t, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("images: %q: want registry/repository:tag: %w", ref, err)
	}
	if t.Name() != ref {
		return name.Tag{}, fmt.Errorf("images: %q: want registry/repository:tag, it reads as %s", ref, t.Name())
	}
	return t, nil
}

// Write writes the set into dir as an OCI image layout, images in name
// order, replacing what dir held: it builds the layout beside dir and
// renames it into place, so dir is either the old layout or the new one.
func (s *Set) Write(dir string) ([]Entry, error) {
	if len(s.images) == 0 {
		return nil, errors.New("images: empty set")
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp")
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("images: write layout: %w", err)
	}
	for _, ref := range sortedKeys(s.images) {
		err := lp.AppendImage(s.images[ref],
			layout.WithAnnotations(map[string]string{AnnotationRefName: ref, AnnotationContainerdName: ref}),
			layout.WithPlatform(Platform))
		if err != nil {
			return nil, fmt.Errorf("images: write %s: %w", ref, err)
		}
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("images: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return List(dir)
}

// List reads the images of an OCI image layout directory written by Write,
// in the order of its index.
func List(dir string) ([]Entry, error) {
	entries, _, err := readLayout(dir)
	return entries, err
}

// readLayout lists the named images of a layout and opens them.
func readLayout(dir string) ([]Entry, []v1.Image, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("images: %w", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, nil, fmt.Errorf("images: %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("images: %s: %w", dir, err)
	}
	var (
		entries []Entry
		imgs    []v1.Image
	)
	for _, d := range im.Manifests {
		ref := d.Annotations[AnnotationRefName]
		if _, err := parseTag(ref); err != nil {
			return nil, nil, fmt.Errorf("images: %s: manifest %s: %w", dir, d.Digest, err)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("images: %s: %s: %w", dir, ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, nil, fmt.Errorf("images: %s: %s: %w", dir, ref, err)
		}
		size := d.Size + m.Config.Size
		for _, l := range m.Layers {
			size += l.Size
		}
		entries = append(entries, Entry{Name: ref, Digest: d.Digest, Size: size})
		imgs = append(imgs, img)
	}
	return entries, imgs, nil
}
