package worker_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/githubtest"
	"github.com/openneco/neco/pkg/neco"
)

// TestBadReleases: broken releases are refused with a clear reason, nothing
// is installed, and the running version keeps running.
func TestBadReleases(t *testing.T) {
	name := neco.DebName(v2)
	good := func(t *testing.T) []byte {
		data, err := os.ReadFile(buildDeb(t, v2))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name   string
		assets func(t *testing.T) []githubtest.Asset
		setup  func(gh *githubtest.Server)
		reason string
	}{
		{name: "missing asset", reason: "package asset missing from the release: release release-" + v2 + " has no asset " + name,
			assets: func(t *testing.T) []githubtest.Asset {
				return []githubtest.Asset{{Name: "neco_" + v2 + "_arm64.deb", Data: good(t)}}
			}},
		{name: "truncated download", reason: "download shorter than the asset",
			assets: func(t *testing.T) []githubtest.Asset { return []githubtest.Asset{{Name: name, Data: good(t)}} },
			setup:  func(gh *githubtest.Server) { gh.TruncateAsset(name, 500) }},
		{name: "wrong checksum", reason: "checksum mismatch",
			assets: func(t *testing.T) []githubtest.Asset {
				return []githubtest.Asset{{Name: name, Data: good(t)}, {Name: name + ".sha256", Data: []byte(strings.Repeat("ab", 32) + "  " + name)}}
			}},
		{name: "package of another version", reason: "downloaded package is neco " + v1 + ", want neco " + v2,
			assets: func(t *testing.T) []githubtest.Asset {
				data, _ := os.ReadFile(buildDeb(t, v1))
				return []githubtest.Asset{{Name: name, Data: data}}
			}},
		{name: "not a Debian package", reason: "dpkg-deb",
			assets: func(t *testing.T) []githubtest.Asset {
				return []githubtest.Asset{{Name: name, Data: []byte("!<arch>\nthis is no package\n")}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, nil)
			publish(t, c.gh, v1)
			b := c.addServer(0, v1)
			c.startUpdater("u")
			c.waitFor("v1 completed", 30*time.Second, completed(v1, 0))

			c.gh.AddRelease(owner, repo, githubtest.Release{Tag: "release-" + v2, Assets: tt.assets(t)})
			if tt.setup != nil {
				tt.setup(c.gh)
			}
			snap := c.waitFor("v2 stopped", 30*time.Second, stopped)
			if !strings.Contains(snap.Request.StopReason, "boot server 0 aborted at step 0 (install): install "+v2) ||
				!strings.Contains(snap.Request.StopReason, tt.reason) {
				t.Errorf("stop reason = %q, want it to contain %q", snap.Request.StopReason, tt.reason)
			}
			if got := c.installed(b); got != v1 {
				t.Errorf("installed = %q, want %s still", got, v1)
			}
			if b.svc.Restarts("sabakan") != 1 {
				t.Errorf("sabakan restarted %d times: a step of the refused version ran", b.svc.Restarts("sabakan"))
			}
		})
	}
}

// TestMalformedTags: releases whose tags are not versions are ignored.
func TestMalformedTags(t *testing.T) {
	c := newCluster(t, map[string]string{neco.KeyEnv: "staging"})
	publish(t, c.gh, v1)
	c.addServer(0, v1)
	c.startUpdater("u")
	c.waitFor("v1 completed", 30*time.Second, completed(v1, 0))
	for _, tag := range []string{"release-2025.3.10-2", "release-2025.03.10", "release-9999.99.99-1", "release-2025.03.10-02"} {
		c.gh.AddRelease(owner, repo, githubtest.Release{Tag: tag, Prerelease: true})
	}
	time.Sleep(2500 * time.Millisecond) // two check intervals
	snap, err := c.st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Latest != v1 || snap.Request.Version != v1 {
		t.Errorf("latest %s, request %s: a malformed tag was taken", snap.Latest, snap.Request.Version)
	}
}

// TestStepTimeout: a step that runs past step-timeout aborts the update
// with that reason.
func TestStepTimeout(t *testing.T) {
	c := newCluster(t, map[string]string{neco.KeyStepTimeout: "1s"})
	publish(t, c.gh, v1)
	b := c.addServer(0, v1)
	step := "sabakan-contents"
	b.inGate = make(chan struct{})
	b.gateStep.Store(&step)
	c.startUpdater("u")
	snap := c.waitFor("stopped", 30*time.Second, stopped)
	if !strings.Contains(snap.Request.StopReason, "step sabakan-contents timed out after 1s") {
		t.Errorf("stop reason = %q", snap.Request.StopReason)
	}
}

// TestStepRetriedWhileEtcdUnavailable: a step that fails because etcd is
// briefly unavailable runs again instead of aborting the update.
func TestStepRetriedWhileEtcdUnavailable(t *testing.T) {
	c := newCluster(t, nil)
	publish(t, c.gh, v1)
	b := c.addServer(0, v1)
	b.unavailable.Store(2)
	c.startUpdater("u")
	c.waitFor("v1 completed", 30*time.Second, completed(v1, 0))
	if n := b.unavailable.Load(); n != 0 {
		t.Errorf("the first step met an unavailable etcd %d fewer times than injected", n)
	}
}
