package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/images"
)

// RegistryImagesStep pushes the release's container images, the OCI
// layout the package ships in layoutDir (/usr/share/neco/registry), into
// this boot server's registry through its loopback write listener
// writeAddr. Every server fills its own registry, so a server that joins
// later catches up when its worker runs the current version's steps. The
// push is idempotent and resumable: an image already there is skipped, and
// only the blobs the registry lacks are sent; every tag is read back and
// its digest checked.
func RegistryImagesStep(layoutDir, writeAddr string) Step {
	return Step{Name: "registry-images", Run: func(ctx context.Context, e *StepEnv) error {
		if _, err := os.Stat(filepath.Join(layoutDir, "index.json")); errors.Is(err, fs.ErrNotExist) {
			slog.Info("the package carries no container images", "dir", layoutDir)
			return nil
		}
		start := time.Now()
		results, err := images.Push(ctx, layoutDir, writeAddr, images.PushOptions{
			Insecure: true, // loopback: the write listener has no TLS
			Progress: progressLogger(5 * time.Second),
		})
		if err != nil {
			return fmt.Errorf("push the release's images to %s: %w", writeAddr, err)
		}
		pushed := 0
		for _, r := range results {
			if !r.Skipped {
				pushed++
			}
		}
		slog.Info("the release's images are in this boot server's registry", "images", len(results), "pushed", pushed,
			"skipped", len(results)-pushed, "elapsed", time.Since(start).Round(time.Millisecond).String())
		return nil
	}}
}

// progressLogger logs an image upload's progress at most every interval
// and when it completes.
func progressLogger(interval time.Duration) func(ref string, complete, total int64) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return func(ref string, complete, total int64) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if complete < total && now.Sub(last[ref]) < interval {
			return
		}
		last[ref] = now
		slog.Info("pushing image", "ref", ref, "bytes", complete, "of", total)
	}
}
