package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/worker"
)

// interruptedInstaller is what the worker sees when the package's
// postinst restarts the worker's own service: its `systemd-run --wait`
// client is killed ("signal: terminated") while dpkg, in its own unit,
// carries on and finishes.
type interruptedInstaller struct {
	deb.RootInstaller
	busy    atomic.Bool
	queries atomic.Int32
}

func (i *interruptedInstaller) Install(ctx context.Context, path string) error {
	i.busy.Store(true)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		i.RootInstaller.Install(context.Background(), path)
		i.busy.Store(false)
	}()
	return errors.New("deb: install: systemd-run: signal: terminated")
}

func (i *interruptedInstaller) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	// The first query after the interruption is killed too: systemd
	// signals every process of the stopping service, new ones included.
	if i.queries.Add(1) == 2 {
		return "", errors.New("deb: query neco: signal: terminated")
	}
	if i.busy.Load() {
		return "", deb.ErrInProgress
	}
	return i.RootInstaller.InstalledVersion(ctx, pkg)
}

type fileDownloader struct{ path string }

func (f fileDownloader) Download(_ context.Context, _ neco.Env, version, dir string) (string, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, neco.DebName(version))
	return dst, os.WriteFile(dst, data, 0o644)
}

// TestInstallInterrupted: an installation whose client is interrupted but
// whose dpkg finishes is a successful installation (hand over to the new
// binary), not an abort that stops the update everywhere (seen in the
// virtual data center on every upgrade).
func TestInstallInterrupted(t *testing.T) {
	ctx := context.Background()
	const v1, v2 = "2024.03.01-1", "2024.03.01-2"
	inst := &interruptedInstaller{RootInstaller: deb.RootInstaller{Root: t.TempDir()}}
	if err := inst.RootInstaller.Install(ctx, buildDeb(t, v1)); err != nil {
		t.Fatal(err)
	}
	st := storage.New(etcdtest.Client(t))
	if err := st.SetConfig(ctx, neco.KeyEnv, string(neco.EnvProd)); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := storage.PutRequest(snap, &neco.UpdateRequest{ID: snap.Revision, Version: v2, Servers: []int{0}, StartedAt: time.Now()})
	if _, err := st.Client.Txn(ctx).If(g.Cmps...).Then(g.Ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	pkg := buildDeb(t, v2)
	w := &worker.Worker{LRN: 0, Storage: st, Installer: inst, Steps: []worker.Step{worker.FinalStep()},
		DownloadDir: t.TempDir(), PollInterval: 50 * time.Millisecond,
		NewDownloader: func(neco.Config) (worker.Downloader, error) { return fileDownloader{pkg}, nil }}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Run(rctx); !errors.Is(err, worker.ErrHandover) {
		t.Fatalf("Run = %v, want the handover to the installed version", err)
	}
	if got, _ := inst.InstalledVersion(ctx, worker.PackageName); got != v2 {
		t.Errorf("installed %q, want %s", got, v2)
	}
	snap, err = st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := snap.CurrentStatuses()[0]; s != nil && s.Cond == neco.CondAborted {
		t.Errorf("the worker aborted the update: %s", s.Message)
	}
}
