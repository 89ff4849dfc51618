package setup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/poll"
	"github.com/openneco/neco/pkg/services"
)

// EtcdUnit is the etcd service of server me in a cluster of members. state
// is "new" for a bootstrap and "existing" for a server joining; etcd ignores
// both once its data directory holds a member.
func EtcdUnit(c *bootserver.Cluster, me bootserver.Server, members []bootserver.Server, p bootserver.Paths, state, token string) (services.Unit, error) {
	initial := make([]string, len(members))
	for i, s := range members {
		initial[i] = s.Name() + "=" + c.EtcdPeerURL(s)
	}
	cmd, err := services.Command("etcd",
		"--name="+me.Name(),
		"--data-dir="+p.EtcdDataDir,
		"--listen-client-urls="+c.EtcdClientURL(me),
		"--advertise-client-urls="+c.EtcdClientURL(me),
		"--listen-peer-urls="+c.EtcdPeerURL(me),
		"--initial-advertise-peer-urls="+c.EtcdPeerURL(me),
		"--initial-cluster="+strings.Join(initial, ","),
		"--initial-cluster-state="+state,
		"--initial-cluster-token="+token,
		// Client side: TLS server certificate; clients authenticate with
		// certificates of the etcd client CA, whose CN is the etcd user.
		"--cert-file="+p.ServerCert, "--key-file="+p.ServerKey,
		"--client-cert-auth", "--trusted-ca-file="+p.ClientCA,
		// Peers: mutual TLS with the peer CA.
		"--peer-cert-file="+p.PeerCert, "--peer-key-file="+p.PeerKey,
		"--peer-client-cert-auth", "--peer-trusted-ca-file="+p.PeerCA,
		// A peer's connection may come from any of its addresses (with BGP,
		// the source is a link address, not the node address the
		// certificate names; on loopback it is 127.0.0.1): trust the peer
		// CA, not the source address.
		"--peer-skip-client-san-verification",
		// Keep an hour of history; check data against the peers at start
		// and every few minutes, and compaction hashes after compactions.
		"--auto-compaction-mode=periodic", "--auto-compaction-retention=1h",
		"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true",
		"--corrupt-check-time=5m",
		// No JSON gateway: it would connect to etcd with the server's own
		// certificate, which the client CA rejects (and which would act as
		// its CN for every gateway request).
		"--enable-grpc-gateway=false",
		"--log-level=warn",
	)
	if err != nil {
		return services.Unit{}, err
	}
	return services.Unit{Name: "etcd", Description: "etcd of the neco boot servers", Command: cmd, StopTimeout: 30 * time.Second}, nil
}

// waitEtcd waits until etcd answers a linearizable read through client, a
// client scoped to /neco/ (storage.Ping: a quorum is up), and lists at
// least n members.
func waitEtcd(ctx context.Context, client *clientv3.Client, n int) error {
	lastErr, err := poll.Until(ctx, "etcd with a quorum and "+strconv.Itoa(n)+" member(s)", 500*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ml, err := client.MemberList(cctx)
		if err == nil {
			err = storage.New(client).Ping(cctx)
		}
		if err == nil && len(ml.Members) < n {
			err = fmt.Errorf("%d of %d members", len(ml.Members), n)
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("etcd did not become healthy: %v", cmp.Or(lastErr, err))
	}
	return nil
}

// waitQuorumWithout waits until the members other than me's form a
// quorum by themselves, so that restarting me's member leaves the cluster
// available: in a cluster of three, both others must answer. A restart
// while another member is down (a server that crashed during setup, one
// being replaced) would stop etcd, and Vault's storage with it, until me's
// member is back.
func waitQuorumWithout(ctx context.Context, client *clientv3.Client, me bootserver.Server) error {
	lastErr, err := poll.Until(ctx, "the other etcd members to answer (so that restarting this one keeps a quorum)", 500*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ml, err := client.MemberList(cctx)
		if err != nil {
			return false, err
		}
		healthy, others := 0, []string{}
		var down []string
		for _, m := range ml.Members {
			if m.Name == me.Name() {
				continue
			}
			others = append(others, m.Name)
			if len(m.ClientURLs) == 0 {
				down = append(down, m.Name+" (not started)")
				continue
			}
			if _, err := client.Status(cctx, m.ClientURLs[0]); err != nil {
				down = append(down, m.Name+" ("+err.Error()+")")
				continue
			}
			healthy++
		}
		if quorum := len(ml.Members)/2 + 1; healthy < quorum {
			return false, fmt.Errorf("%d of the other members %v answer, %d needed; down: %s", healthy, others, quorum, strings.Join(down, ", "))
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("etcd would lose its quorum while this member restarts: %v", cmp.Or(lastErr, err))
	}
	return nil
}

// EnableEtcdAuth creates root, vault and backup and turns authentication
// on. From then on a client is the user named by its certificate's CN.
func EnableEtcdAuth(ctx context.Context, client *clientv3.Client) error {
	if _, err := client.UserAddWithOptions(ctx, bootserver.EtcdRootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd user root: %w", err)
	}
	if _, err := client.UserGrantRole(ctx, bootserver.EtcdRootUser, "root"); err != nil {
		return fmt.Errorf("etcd user root: %w", err)
	}
	if err := bootserver.EnsureEtcdUser(ctx, client, bootserver.EtcdVaultUser, "/vault/", false); err != nil {
		return err
	}
	if err := bootserver.EnsureEtcdUser(ctx, client, bootserver.EtcdBackupUser, "", true); err != nil {
		return err
	}
	if _, err := client.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable etcd authentication: %w", err)
	}
	return nil
}

// EnsureMember adds s to the etcd cluster unless a member already has its
// peer URL. It is what a CD worker (and neco join) calls for a new server.
func EnsureMember(ctx context.Context, client *clientv3.Client, c *bootserver.Cluster, s bootserver.Server) (members []bootserver.Server, err error) {
	ml, err := client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	peer := c.EtcdPeerURL(s)
	found := false
	for _, m := range ml.Members {
		if slices.Contains(m.PeerURLs, peer) {
			found = true
		}
	}
	if !found {
		// etcd refuses a new member while any current one is not
		// connected (strict reconfiguration check): wait for that.
		for {
			_, err := client.MemberAdd(ctx, []string{peer})
			if err == nil {
				break
			}
			if !errors.Is(err, rpctypes.ErrUnhealthy) {
				return nil, fmt.Errorf("add etcd member %s: %w", s.Name(), err)
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("add etcd member %s: %w: bring every current member up first", s.Name(), err)
			case <-time.After(time.Second):
			}
		}
		ml, err = client.MemberList(ctx)
		if err != nil {
			return nil, err
		}
	}
	for _, m := range ml.Members {
		name := m.Name
		if name == "" && slices.Contains(m.PeerURLs, peer) {
			name = s.Name()
		}
		srv := bootserver.Server{Address: ""}
		if _, err := fmt.Sscanf(name, "boot-%d", &srv.LRN); err != nil {
			return nil, fmt.Errorf("etcd member %q has no boot-<lrn> name", name)
		}
		if srv.LRN == s.LRN {
			srv = s
		} else if srv, err = c.Lookup(srv.LRN); err != nil {
			return nil, err
		}
		members = append(members, srv)
	}
	slices.SortFunc(members, func(a, b bootserver.Server) int { return a.LRN - b.LRN })
	return members, nil
}

// RemoveMember removes the etcd member of s, if any. It is what neco leave
// calls for a server that left, once CheckLeave allowed it. Removing the current etcd
// leader may time out while leadership moves; it checks again and retries.
func RemoveMember(ctx context.Context, client *clientv3.Client, c *bootserver.Cluster, s bootserver.Server) error {
	peer := c.EtcdPeerURL(s)
	for {
		ml, err := client.MemberList(ctx)
		if err == nil {
			i := slices.IndexFunc(ml.Members, func(m *etcdserverpb.Member) bool {
				return m.Name == s.Name() || slices.Contains(m.PeerURLs, peer)
			})
			if i < 0 {
				return nil
			}
			_, err = client.MemberRemove(ctx, ml.Members[i].ID)
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove etcd member %s: %w", s.Name(), err)
		case <-time.After(time.Second):
		}
	}
}

// dataDirHasMember reports whether etcd already keeps a member in dir.
func dataDirHasMember(dir string) bool {
	_, err := os.Stat(dir + "/member/snap")
	return err == nil
}
