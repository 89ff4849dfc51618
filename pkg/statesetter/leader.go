package statesetter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
)

// RunAsLeader campaigns for leadership (the election
// storage.LeaderStateSetter under /neco/) and runs s while leading. When the
// session is lost it stops acting and campaigns again; a deposed leader stops
// within one interval. It returns nil when ctx ends.
//
// Each of also runs beside s for as long as the leadership lasts, with the
// election's key: what fenced writes compare against (the repair loop).
func RunAsLeader(ctx context.Context, etcd *clientv3.Client, name string, s *Setter, also ...func(ctx context.Context, leaderKey string)) error {
	for ctx.Err() == nil {
		leader, err := etcdutil.Campaign(ctx, etcd, storage.LeaderStateSetter, name, 60)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			slog.Warn("state setter: campaign failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		slog.Info("state setter: leading", "name", name)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-leader.Lost():
				slog.Warn("state setter: leadership lost")
			case <-lctx.Done():
			}
			cancel()
		}()
		var wg sync.WaitGroup
		for _, f := range also {
			wg.Go(func() { f(lctx, leader.Key()) })
		}
		s.Run(lctx)
		cancel()
		wg.Wait()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		leader.Resign(rctx)
		rcancel()
	}
	return nil
}
