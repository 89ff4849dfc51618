package setup

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/neco/storage"
)

// CheckLeave decides whether boot server lrn may leave an etcd cluster of
// members members (its own included; 0 when it is not a member), given
// whether its member answers. Below MinServers members the cluster loses
// fault tolerance, so a server that is up must wait for a replacement to
// join first. A server that is down may always leave: its member counts
// for nothing already, and it must go before a replacement joins — three
// members with one dead plus a fourth added but not yet started have no
// quorum. force overrides the check.
func CheckLeave(lrn, members int, alive, force bool) error {
	if force || members == 0 || members > bootserver.MinServers || !alive {
		return nil
	}
	return fmt.Errorf("boot server %d is up and etcd has %d members: removing it would leave %d, fewer than %d; join a replacement first (a boot server that is down may leave; --force removes it anyway)",
		lrn, members, members-1, bootserver.MinServers)
}

// Leave removes boot server s: its registration first (so the updater
// drops it), then its etcd member (which the CD workers would also do).
// Both steps are idempotent, so a failed leave is simply run again. What
// CheckLeave refuses changes nothing.
func Leave(ctx context.Context, client *clientv3.Client, c *bootserver.Cluster, s bootserver.Server, force bool) error {
	ml, err := client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("list etcd members: %w", err)
	}
	members, alive := 0, false
	peer := c.EtcdPeerURL(s)
	for _, m := range ml.Members {
		if m.Name == s.Name() || slices.Contains(m.PeerURLs, peer) {
			members = len(ml.Members)
			alive = memberAnswers(ctx, client, m.ClientURLs)
		}
	}
	if err := CheckLeave(s.LRN, members, alive, force); err != nil {
		return err
	}
	for {
		err := storage.New(client).UnregisterBootServer(ctx, s.LRN)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unregister boot server %d: %w", s.LRN, err)
		case <-time.After(time.Second):
		}
	}
	return RemoveMember(ctx, client, c, s)
}

// memberAnswers reports whether an etcd member serves at one of its
// client URLs within a few seconds.
func memberAnswers(ctx context.Context, client *clientv3.Client, urls []string) bool {
	for _, u := range urls {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := client.Status(sctx, u)
		cancel()
		if err == nil {
			return true
		}
	}
	return false
}
