package updater

import (
	"context"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/githubtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func waitSnap(t *testing.T, st *storage.Storage, within time.Duration, cond func(*storage.Snapshot) bool) *storage.Snapshot {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		snap, err := st.Snapshot(context.Background())
		if err == nil && cond(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %+v", within, snap)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUpdaterWakesOnConfig: with a check interval of an hour, turning the
// environment on makes the updater check and request at once, and a
// release-time window holds a new release back while recording it.
func TestUpdaterWakesOnConfig(t *testing.T) {
	ctx := context.Background()
	gh := githubtest.NewServer(t)
	gh.AddRelease("o", "r", githubtest.Release{Tag: "release-2025.03.10-1"})
	st := storage.New(etcdtest.Client(t))
	for k, v := range map[string]string{neco.KeyGitHubAPIURL: gh.APIURL(), neco.KeyGitHubRepo: "o/r", neco.KeyCheckUpdateInterval: "1h"} {
		if err := st.SetConfig(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	st.RegisterBootServer(ctx, 0, "")
	uctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	u := &Updater{Storage: storage.New(etcdtest.Client(t)), Name: "u", SessionTTL: 5}
	go func() { defer close(done); u.Run(uctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(300 * time.Millisecond)
	if snap, _ := st.Snapshot(ctx); snap.Latest != "" || snap.Request != nil {
		t.Fatalf("env none acted: %+v", snap)
	}
	start := time.Now()
	st.SetConfig(ctx, neco.KeyEnv, "prod")
	waitSnap(t, st, 5*time.Second, func(s *storage.Snapshot) bool { return s.Request != nil && s.Request.Version == "2025.03.10-1" })
	t.Logf("request written %s after env was set (check interval 1h)", time.Since(start))

	// Mark the update complete, then hold the next release outside its window.
	snap, _ := st.Snapshot(ctx)
	st.PutStatus(ctx, snap, 0, &neco.UpdateStatus{RequestID: snap.Request.ID, Version: snap.Request.Version, Step: 1, Cond: neco.CondCompleted})
	now := time.Now().UTC()
	st.SetConfig(ctx, neco.KeyReleaseTime, "* "+itoa((now.Hour()+12)%24)+" * * *")
	gh.AddRelease("o", "r", githubtest.Release{Tag: "release-2025.03.11-2"})
	st.SetConfig(ctx, neco.KeyGitHubToken, "x") // a source setting: checks again at once
	waitSnap(t, st, 5*time.Second, func(s *storage.Snapshot) bool { return s.Latest == "2025.03.11-2" })
	time.Sleep(300 * time.Millisecond)
	if snap, _ := st.Snapshot(ctx); snap.Request.Version != "2025.03.10-1" {
		t.Errorf("a release started outside release-time: %+v", snap.Request)
	}
	st.UnsetConfig(ctx, neco.KeyReleaseTime)
	waitSnap(t, st, 5*time.Second, func(s *storage.Snapshot) bool { return s.Request.Version == "2025.03.11-2" })
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }
