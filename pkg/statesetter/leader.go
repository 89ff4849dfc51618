package statesetter

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
)

// ElectionKey is the election prefix under /neco/ that picks the one
// state setter that acts.
const ElectionKey = "leader/state-setter"

// RunAsLeader campaigns for leadership and runs s while leading. When the
// session is lost it stops acting and campaigns again; a deposed leader stops
// within one interval. It returns nil when ctx ends.
func RunAsLeader(ctx context.Context, etcd *clientv3.Client, name string, s *Setter) error {
	for ctx.Err() == nil {
		leader, err := etcdutil.Campaign(ctx, etcd, ElectionKey, name, 60)
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
		s.Run(lctx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		leader.Resign(rctx)
		rcancel()
	}
	return nil
}
