package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrDigestMismatch is returned when a tag does not resolve to the pushed
// manifest after a push.
var ErrDigestMismatch = errors.New("images: digest mismatch after push")

// PushOptions tune Push. The zero value pushes anonymously over HTTPS, or
// plain HTTP to a loopback or private address (go-containerregistry's rule).
type PushOptions struct {
	// Transport carries the requests; nil is http.DefaultTransport.
	Transport http.RoundTripper
	// Insecure pushes over plain HTTP whatever the host.
	Insecure bool
	// Progress, if set, is called as bytes of an image are uploaded:
	// complete of total bytes that image had to upload.
	Progress func(ref string, complete, total int64)
	// Logger reports each image pushed or skipped; nil is slog.Default().
	Logger *slog.Logger
}

// PushResult is what Push did with one image.
type PushResult struct {
	Name    string  // the name in the layout: registry.k8s.io/pause:3.10.2
	Ref     string  // where it went: host/pause:3.10.2
	Digest  v1.Hash // manifest digest, read back from the registry
	Skipped bool    // the tag already resolved to Digest: nothing was sent
}

// MirrorRef is where the image name (registry.k8s.io/e2e-test-images/agnhost:2.66.1)
// lives on a registry that mirrors the name's registry
// (host/e2e-test-images/agnhost:2.66.1): the repository path without the
// upstream host, which is what containerd asks a hosts.toml mirror for.
func MirrorRef(ref, host string) (string, error) {
	t, err := parseTag(ref)
	if err != nil {
		return "", err
	}
	return host + "/" + t.RepositoryStr() + ":" + t.TagStr(), nil
}

// Push pushes every image of the OCI layout layoutDir to the registry at
// registryHost ("127.0.0.1:5001") under MirrorRef. It is idempotent and
// resumable: an image whose tag already resolves to its digest is skipped,
// and go-containerregistry sends only the blobs the repository lacks. After
// each push it reads the manifest back by tag and checks its digest
// (ErrDigestMismatch).
func Push(ctx context.Context, layoutDir, registryHost string, opts PushOptions) ([]PushResult, error) {
	entries, imgs, err := readLayout(layoutDir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	remoteOpts := []remote.Option{remote.WithContext(ctx)}
	if opts.Transport != nil {
		remoteOpts = append(remoteOpts, remote.WithTransport(opts.Transport))
	}

	results := make([]PushResult, 0, len(entries))
	for i, e := range entries {
		target, err := MirrorRef(e.Name, registryHost)
		if err != nil {
			return results, err
		}
		ref, err := name.NewTag(target, nameOpts...)
		if err != nil {
			return results, fmt.Errorf("images: push %s: %w", e.Name, err)
		}
		res := PushResult{Name: e.Name, Ref: target}

		desc, err := remote.Head(ref, remoteOpts...)
		var terr *transport.Error
		switch {
		case err == nil && desc.Digest == e.Digest:
			res.Digest, res.Skipped = desc.Digest, true
			results = append(results, res)
			log.Info("image already in the registry", "ref", target, "digest", e.Digest.String())
			continue
		case err == nil, errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		default:
			return results, fmt.Errorf("images: push %s: %w", target, err)
		}

		if err := write(ref, imgs[i], remoteOpts, opts.Progress); err != nil {
			return results, fmt.Errorf("images: push %s: %w", target, err)
		}
		if res.Digest, err = readBack(ref, remoteOpts); err != nil {
			return results, fmt.Errorf("images: push %s: read back: %w", target, err)
		}
		if res.Digest != e.Digest {
			return results, fmt.Errorf("%w: %s is %s, pushed %s", ErrDigestMismatch, target, res.Digest, e.Digest)
		}
		results = append(results, res)
		log.Info("image pushed", "ref", target, "digest", e.Digest.String(), "size", e.Size)
	}
	return results, nil
}

// write pushes img and reports progress to progress, if set.
func write(ref name.Tag, img v1.Image, opts []remote.Option, progress func(string, int64, int64)) error {
	if progress == nil {
		return remote.Write(ref, img, opts...)
	}
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range updates {
			if u.Error == nil {
				progress(ref.String(), u.Complete, u.Total)
			}
		}
	}()
	// remote.Write closes updates when it returns.
	err := remote.Write(ref, img, append(opts[:len(opts):len(opts)], remote.WithProgress(updates))...)
	<-done
	return err
}

// readBack fetches the manifest ref resolves to and returns the digest of
// its bytes (not the digest the registry claims in a header).
func readBack(ref name.Tag, opts []remote.Option) (v1.Hash, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(desc.Manifest))
	return h, err
}
