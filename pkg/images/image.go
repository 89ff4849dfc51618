package images

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is what an image says about how to run it, plus the annotations of
// its manifest. Images are linux/amd64.
type Config struct {
	Entrypoint   []string
	Cmd          []string
	User         string   // "uid:gid" or a name from the image's /etc/passwd
	Env          []string // "NAME=value"
	WorkingDir   string
	ExposedPorts []string // "53/udp", "8080/tcp"
	StopSignal   string   // the signal that stops the container, e.g. "SIGQUIT" (default SIGTERM)
	Labels       map[string]string
	// Annotations go on the manifest (org.opencontainers.image.*).
	Annotations map[string]string
}

// The image config is marshalled from these types rather than from
// go-containerregistry's v1.ConfigFile so that its bytes are this package's
// choice: no history, no zero times, no empty fields.
type ociConfig struct {
	Created      string        `json:"created"`
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Config       runtimeConfig `json:"config"`
	RootFS       rootFS        `json:"rootfs"`
}

type runtimeConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
}

type rootFS struct {
	Type    string    `json:"type"`
	DiffIDs []v1.Hash `json:"diff_ids"`
}

// image implements partial.CompressedImageCore.
type image struct {
	config   []byte
	manifest []byte
	layers   map[v1.Hash]*Layer
}

// NewImage makes an OCI image (manifest and config media types, linux/amd64)
// of layers, bottom first, and cfg. Equal inputs give equal bytes.
func NewImage(cfg Config, layers ...*Layer) (v1.Image, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("images: an image needs at least one layer")
	}
	c := ociConfig{
		Created:      Epoch.Format("2006-01-02T15:04:05Z"),
		Architecture: "amd64",
		OS:           "linux",
		Config: runtimeConfig{
			User:       cfg.User,
			Env:        cfg.Env,
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			WorkingDir: cfg.WorkingDir,
			Labels:     cfg.Labels,
			StopSignal: cfg.StopSignal,
		},
		RootFS: rootFS{Type: "layers"},
	}
	if len(cfg.ExposedPorts) > 0 {
		c.Config.ExposedPorts = make(map[string]struct{}, len(cfg.ExposedPorts))
		for _, p := range cfg.ExposedPorts {
			c.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img := &image{layers: make(map[v1.Hash]*Layer, len(layers))}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Annotations:   cfg.Annotations,
	}
	for _, l := range layers {
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: types.OCILayer,
			Size:      int64(len(l.compressed)),
			Digest:    l.digest,
		})
		img.layers[l.digest] = l
	}
	var err error
	if img.config, err = marshal(c); err != nil {
		return nil, err
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(img.config))}
	if m.Config.Digest, _, err = v1.SHA256(bytes.NewReader(img.config)); err != nil {
		return nil, err
	}
	if img.manifest, err = marshal(m); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(img)
}

// marshal is json.Marshal without HTML escaping (so "<" stays "<") and
// with map keys sorted, as encoding/json always sorts them.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("images: marshal: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("images: no layer %s", h)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
