package worker_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/images"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/registry/registrytest"
	"github.com/openneco/neco/pkg/worker"
)

// TestRegistryImagesStep pushes a release's layout into a real registry
// through the step, twice (the second run finds everything there), and
// reads every image back by its mirror name with its digest.
func TestRegistryImagesStep(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t)
	share := t.TempDir()
	var set images.Set
	for _, n := range []string{"registry.k8s.io/pause:3.10.2", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"} {
		l, err := images.NewLayer([]images.File{images.Bytes("/name", 0o644, []byte(n))})
		if err != nil {
			t.Fatal(err)
		}
		img, err := images.NewImage(images.Config{Cmd: []string{"/name"}}, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Add(n, img); err != nil {
			t.Fatal(err)
		}
	}
	want, err := set.Write(filepath.Join(share, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	step := worker.RegistryImagesStep(filepath.Join(share, "registry"), reg.WriteHost())
	env := &worker.StepEnv{Request: &neco.UpdateRequest{Version: "2026.12.02-1"}}
	for i := range 2 {
		if err := step.Run(ctx, env); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	for _, e := range want {
		ref, err := images.MirrorRef(e.Name, reg.WriteHost())
		if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(ref, reg.WriteHost()+"/")
		i := strings.LastIndex(path, ":")
		repo, tag := path[:i], path[i+1:]
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+reg.WriteHost()+"/v2/"+repo+"/manifests/"+tag, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != e.Digest.String() {
			t.Errorf("%s: %s digest %s, want %s", e.Name, resp.Status, got, e.Digest)
		}
	}

	// A package without images: nothing to do, no error.
	empty := worker.RegistryImagesStep(filepath.Join(t.TempDir(), "registry"), reg.WriteHost())
	if err := empty.Run(ctx, env); err != nil {
		t.Errorf("a package without images: %v", err)
	}
	// The registry down: a clear error, not a silent success.
	down := worker.RegistryImagesStep(filepath.Join(share, "registry"), "127.0.0.1:1")
	if err := down.Run(ctx, env); err == nil {
		t.Error("a push to a registry that does not answer succeeded")
	}
}
