package images_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/registry/registrytest"
)

// startRegistry runs neco-registry in this process and returns the
// address of its write listener.
func startRegistry(t *testing.T) string { return registrytest.Start(t).WriteHost() }

// counter counts the requests that change the registry, and can redirect
// manifest PUTs to another tag to make a push land elsewhere.
type counter struct {
	mu       sync.Mutex
	writes   int
	requests int
	redirect string // if set, manifest PUTs go to this tag
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests++
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.writes++
	}
	redirect := c.redirect
	c.mu.Unlock()
	if redirect != "" && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		r = r.Clone(r.Context())
		r.URL.Path = r.URL.Path[:strings.LastIndex(r.URL.Path, "/")+1] + redirect
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) reset() (writes, requests int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, requests = c.writes, c.requests
	c.writes, c.requests = 0, 0
	return writes, requests
}

// TestPush pushes the synthetic images to neco-registry: then each tag
// resolves to its digest under the mirror path; a second push skips every
// image and writes nothing.
func TestPush(t *testing.T) {
	host := startRegistry(t)
	dir := filepath.Join(t.TempDir(), "layout")
	entries := build(t, syntheticInputs(t), dir)
	c := &counter{}
	var mu sync.Mutex
	progress := map[string][2]int64{}
	opts := images.PushOptions{
		Transport: c,
		Progress: func(ref string, complete, total int64) {
			mu.Lock()
			progress[ref] = [2]int64{complete, total}
			mu.Unlock()
		},
	}
	results, err := images.Push(t.Context(), dir, host, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(entries) {
		t.Fatalf("%d results for %d images", len(results), len(entries))
	}
	for i, r := range results {
		want, _ := images.MirrorRef(entries[i].Name, host)
		if r.Name != entries[i].Name || r.Ref != want || r.Digest != entries[i].Digest || r.Skipped {
			t.Errorf("result %+v, want %s at %s, %s, pushed", r, entries[i].Name, want, entries[i].Digest)
		}
		p := progress[r.Ref]
		if p[1] == 0 || p[0] != p[1] {
			t.Errorf("%s: progress %d of %d bytes", r.Ref, p[0], p[1])
		}
		ref, err := name.ParseReference(r.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if desc, err := remote.Head(ref, remote.WithContext(t.Context())); err != nil || desc.Digest != entries[i].Digest {
			t.Errorf("%s: %v, %v", r.Ref, desc, err)
		}
	}
	writes, requests := c.reset()
	t.Logf("first push: %d requests, %d writes", requests, writes)

	results, err = images.Push(t.Context(), dir, host, images.PushOptions{Transport: c})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Skipped {
			t.Errorf("%s pushed again", r.Ref)
		}
	}
	writes, requests = c.reset()
	if writes != 0 {
		t.Errorf("second push: %d writes, want 0", writes)
	}
	t.Logf("second push: %d requests, %d writes", requests, writes)
}

// TestPushVerify: a push whose manifest does not end up under the tag (here
// the transport sends it to another tag, the tag holding another image) is
// an ErrDigestMismatch.
func TestPushVerify(t *testing.T) {
	host := startRegistry(t)
	var s images.Set
	if err := s.Add("registry.k8s.io/test/x:1", testImage(t, "new")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	old, err := name.ParseReference(host + "/test/x:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(old, testImage(t, "old"), remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	_, err = images.Push(t.Context(), dir, host, images.PushOptions{Transport: &counter{redirect: "elsewhere"}})
	if !errors.Is(err, images.ErrDigestMismatch) {
		t.Fatalf("Push: %v, want ErrDigestMismatch", err)
	}
	// Without the detour the same push corrects the tag.
	if _, err := images.Push(t.Context(), dir, host, images.PushOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPushUnreachable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	build(t, syntheticInputs(t), dir)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := images.Push(ctx, dir, "127.0.0.1:1", images.PushOptions{}); err == nil {
		t.Error("push to a closed port succeeded")
	}
	if _, err := images.Push(ctx, filepath.Join(t.TempDir(), "none"), "127.0.0.1:1", images.PushOptions{}); err == nil {
		t.Error("push of a missing layout succeeded")
	}
}

func TestMirrorRef(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{images.PauseName, "127.0.0.1:5001/pause:3.10.2"},
		{images.AgnhostName, "127.0.0.1:5001/e2e-test-images/agnhost:2.66.1"},
		{images.BusyboxName, "127.0.0.1:5001/e2e-test-images/busybox:1.37.0-2"},
		{images.CoreDNSName, "127.0.0.1:5001/coredns/coredns:v1.14.6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := images.MirrorRef(tt.name, "127.0.0.1:5001")
			if err != nil || got != tt.want {
				t.Errorf("MirrorRef = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := images.MirrorRef("busybox", "127.0.0.1:5001"); err == nil {
		t.Error("a short name was accepted")
	}
}
