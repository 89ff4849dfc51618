package worker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/openneco/neco/pkg/neco/storage"
)

// EtcdUnit is the name of the boot servers' etcd service.
const EtcdUnit = "etcd"

// MemberName is the etcd member name of boot server lrn.
func MemberName(lrn int) string { return "boot-" + strconv.Itoa(lrn) }

// memberLRN parses a member name made by MemberName.
func memberLRN(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "boot-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && strconv.Itoa(n) == s
}

// LocalEtcd is this boot server's etcd service.
type LocalEtcd interface {
	// Join starts the local etcd as a new member of an existing cluster;
	// initial maps every member's name, this one's included, to its peer
	// URL. It returns when the member serves.
	Join(ctx context.Context, initial map[string]string) error
	// Restart restarts the local etcd (to run a new binary) and returns
	// when it serves again.
	Restart(ctx context.Context) error
}

// EtcdStep reconciles etcd membership with the request: a boot server
// that is not yet a member adds itself and starts its etcd; the first
// server of the request removes members of boot servers no longer in it
// (members not named boot-<LRN> are left alone); and every server
// restarts its etcd for the new version one at a time, under an etcd
// mutex, so that the cluster keeps its quorum.
func EtcdStep(cluster clientv3.Cluster, local LocalEtcd, peerURL func(lrn int) string) Step {
	return Step{Name: "etcd", Run: func(ctx context.Context, e *StepEnv) error {
		ml, err := cluster.MemberList(ctx)
		if err != nil {
			return fmt.Errorf("list etcd members: %w", err)
		}
		name, url := MemberName(e.LRN), peerURL(e.LRN)
		var self *etcdMember
		initial := map[string]string{}
		for _, m := range ml.Members {
			n := m.Name
			if len(m.PeerURLs) > 0 && m.PeerURLs[0] == url {
				self = &etcdMember{id: m.ID, started: m.Name != ""}
				n = name
			}
			if n != "" && len(m.PeerURLs) > 0 {
				initial[n] = m.PeerURLs[0]
			}
		}
		if self == nil {
			slog.Info("adding this boot server as an etcd member", "name", name, "peer", url)
			var resp *clientv3.MemberAddResponse
			err := retryUnhealthy(ctx, func() (err error) {
				resp, err = cluster.MemberAdd(ctx, []string{url})
				return err
			})
			if err != nil {
				return fmt.Errorf("add etcd member %s: %w", name, err)
			}
			initial[name] = url
			self = &etcdMember{id: resp.Member.ID}
		}
		if !self.started {
			slog.Info("starting etcd as a new member", "members", slices.Sorted(maps.Keys(initial)))
			if err := local.Join(ctx, initial); err != nil {
				return fmt.Errorf("start etcd member %s: %w", name, err)
			}
			if err := e.Storage.SetServiceVersion(ctx, e.LRN, EtcdUnit, e.Request.Version); err != nil {
				return err
			}
		}

		if e.Index == 0 {
			for _, m := range ml.Members {
				lrn, ok := memberLRN(m.Name)
				if !ok || e.Request.Has(lrn) {
					continue
				}
				slog.Info("removing the etcd member of a departed boot server", "name", m.Name, "id", m.ID)
				err := retryUnhealthy(ctx, func() error { _, err := cluster.MemberRemove(ctx, m.ID); return err })
				if err != nil && !strings.Contains(err.Error(), rpctypes.ErrMemberNotFound.Error()) {
					return fmt.Errorf("remove etcd member %s: %w", m.Name, err)
				}
			}
		}

		ran, err := e.Storage.ServiceVersion(ctx, e.LRN, EtcdUnit)
		if err != nil || ran == e.Request.Version {
			return err
		}
		session, err := concurrency.NewSession(e.Storage.Client, concurrency.WithTTL(30), concurrency.WithContext(ctx))
		if err != nil {
			return err
		}
		defer session.Close()
		mu := concurrency.NewMutex(session, storage.LockEtcd+"/")
		if err := mu.Lock(ctx); err != nil {
			return fmt.Errorf("lock etcd restarts: %w", err)
		}
		defer mu.Unlock(context.WithoutCancel(ctx))
		slog.Info("restarting etcd for the new version", "last_version", ran, "version", e.Request.Version)
		if err := local.Restart(ctx); err != nil {
			return fmt.Errorf("restart etcd: %w", err)
		}
		return e.Storage.SetServiceVersion(ctx, e.LRN, EtcdUnit, e.Request.Version)
	}}
}

// retryUnhealthy retries f while etcd refuses a membership change because
// a member came up less than a few seconds ago (strict reconfiguration
// check), as it does right after the staggered restarts.
func retryUnhealthy(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !strings.Contains(err.Error(), rpctypes.ErrUnhealthy.Error()) {
			return err
		}
		slog.Info("etcd refuses a membership change until every member is up for a while; retrying", "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

type etcdMember struct {
	id      uint64
	started bool
}

// ServiceEtcd is the LocalEtcd of a boot server whose etcd service was set
// up by `neco setup` or `neco join`: Restart goes through the service
// manager. Join is not supported there: `neco join` adds the member and
// starts it with this server's certificates.
type ServiceEtcd struct {
	Services ServiceManager
	// Maintenance and Endpoint tell when the restarted member serves: its
	// status at Endpoint (its client URL) answers.
	Maintenance clientv3.Maintenance
	Endpoint    string
}

// Join implements LocalEtcd.
func (s ServiceEtcd) Join(ctx context.Context, initial map[string]string) error {
	return fmt.Errorf("this boot server is not an etcd member: run neco join on it")
}

// Restart implements LocalEtcd.
func (s ServiceEtcd) Restart(ctx context.Context) error {
	if err := s.Services.Restart(ctx, EtcdUnit); err != nil {
		return err
	}
	return WaitMember(ctx, s.Maintenance, s.Endpoint)
}

// WaitMember waits until the etcd member at endpoint answers a status
// request and knows a leader.
func WaitMember(ctx context.Context, m clientv3.Maintenance, endpoint string) error {
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.Status(sctx, endpoint)
		cancel()
		if err == nil && st.Leader != 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd at %s not serving: %w (last error: %v)", endpoint, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
