// Package store keeps sabakan's inventory in etcd: the IPAM and DHCP
// configuration, machines and their life-cycle, disk encryption keys and the
// audit log.
//
// Every mutation is one etcd transaction guarded by the revisions it read,
// and carries its audit entry in the same transaction. Reads are served from
// an in-memory index fed by one watch on the whole sabakan prefix; before
// answering, a read fetches the current revision with one linearizable
// request and waits until the index has caught up with it, so that it
// reflects every write acknowledged before it started, on any server. The
// one exception is ConfigView, the DHCP server's per-packet read of the IPAM
// and DHCP configuration, which answers from the index as it is, without a
// request to etcd.
//
// Registering many machines at once (POST /machines) does not fit in one
// transaction (etcd allows 128 operations per transaction by default), so a
// registration writes a record bound to a lease, then its machines in chunks
// with create-only comparisons, each machine naming the record, and finally
// flips the record to committed. Readers hide machines whose record is not
// committed; if the writer dies, the lease expires, the record vanishes and
// any server deletes the orphans (abandoned.go), without waiting for the
// janitor election. See docs/etcd.md.
//
// Other packages of the boot server (DHCP, boot content) build on this one:
// they read the configuration and machines through it and put AuditOp into
// their own transactions.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Hostname names this server in registration records (default: the
	// host name).
	Hostname string
	// RegistrationTTL is the TTL of the lease a registration in progress is
	// bound to: how long a killed server's half-written registration stays
	// before it is rolled back (default 10 s).
	RegistrationTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is sabakan's etcd persistence. It is safe for concurrent use; any
// number of Stores, in any number of processes, may share one etcd prefix.
type Store struct {
	client *clientv3.Client
	opts   Options
	idx    *index

	cancel   context.CancelFunc
	done     chan struct{}
	lastPoke atomic.Int64 // unix nanos of the last progress request
}

// Open checks the schema version, loads the index and starts the watch that
// keeps it current. client must be scoped to the sabakan prefix
// (pkg/etcdutil.New does that).
func Open(ctx context.Context, client *clientv3.Client, opts Options) (*Store, error) {
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.RegistrationTTL == 0 {
		opts.RegistrationTTL = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := etcdutil.EnsureSchema(ctx, client, KeyVersion, SchemaVersion, nil); err != nil {
		return nil, etcdErr("schema", err)
	}
	s := &Store{client: client, opts: opts, idx: newIndex(), done: make(chan struct{})}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.watch(wctx)
	return s, nil
}

// Close stops the watch.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Client is the etcd client the store uses, scoped to the sabakan prefix.
func (s *Store) Client() *clientv3.Client { return s.client }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.opts.Now() }

// Health checks that etcd answers a linearizable read.
func (s *Store) Health(ctx context.Context) error {
	_, err := s.client.Get(ctx, KeyVersion)
	return etcdErr("health", err)
}

// loadPage is how many machines one request of the initial load reads.
const loadPage = 1000

// load reads everything the index holds at one revision.
func (s *Store) load(ctx context.Context) error {
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(KeyIPAM),
		clientv3.OpGet(KeyDHCP),
		clientv3.OpGet(KeyRegistrations, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return etcdErr("load index", err)
	}
	rev := resp.Header.Revision
	var kvs = append(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs...)
	kvs = append(kvs, resp.Responses[2].GetResponseRange().Kvs...)
	end := clientv3.GetPrefixRangeEnd(KeyMachines)
	from := KeyMachines
	for {
		r, err := s.client.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(loadPage))
		if err != nil {
			return etcdErr("load machines", err)
		}
		kvs = append(kvs, r.Kvs...)
		if !r.More || len(r.Kvs) == 0 {
			break
		}
		from = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
	s.idx.reset(rev, kvs)
	return nil
}

// watch keeps the index current until ctx ends. It survives etcd outages
// (the client resumes the watch) and compaction (it reloads).
func (s *Store) watch(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		from := s.idx.revision() + 1
		reload := false
		wctx, wcancel := context.WithCancel(indexStream(ctx))
		wch := s.client.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(from))
		for wr := range wch {
			if wr.CompactRevision != 0 {
				slog.Warn("store: watch fell behind a compaction; reloading", "compacted", wr.CompactRevision)
				reload = true
				break
			}
			if err := wr.Err(); err != nil {
				slog.Warn("store: watch failed; restarting it", "error", err)
				break
			}
			if wr.IsProgressNotify() {
				s.idx.advance(wr.Header.Revision)
				continue
			}
			s.idx.apply(wr.Events)
			backoff = 100 * time.Millisecond
		}
		wcancel()
		for reload && ctx.Err() == nil {
			if err := s.load(ctx); err != nil {
				slog.Warn("store: reloading the index failed", "error", err)
				sleep(ctx, backoff)
				continue
			}
			reload = false
		}
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// sync waits until the index reflects every write committed before it was
// called: it reads the current revision with a linearizable request and
// waits for the watch to reach it.
func (s *Store) sync(ctx context.Context) error {
	resp, err := s.client.Get(ctx, KeyVersion)
	if err != nil {
		return etcdErr("read current revision", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.idx.wait(ctx, resp.Header.Revision, s.poke); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: the machine index lags behind etcd (at revision %d, want %d)", sabakan.ErrUnavailable, s.idx.revision(), resp.Header.Revision)
		}
		return err
	}
	return nil
}

// indexStream gives the index's watch a gRPC stream of its own (the client
// keys streams by outgoing metadata), so that progress requests reach it and
// are answered whatever other watchers of the same client are doing: etcd
// answers a progress request only when every watcher of the stream is synced.
func indexStream(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "sabakan-watch", "index")
}

// poke asks etcd for a watch progress notification, which advances the
// index when the sabakan prefix is idle while other prefixes advance the
// revision. Requests are spaced at least a millisecond apart.
func (s *Store) poke() {
	now := time.Now().UnixNano()
	last := s.lastPoke.Load()
	if now-last < int64(time.Millisecond) || !s.lastPoke.CompareAndSwap(last, now) {
		return
	}
	ctx, cancel := context.WithTimeout(indexStream(context.Background()), time.Second)
	defer cancel()
	if err := s.client.RequestProgress(ctx); err != nil {
		slog.Debug("store: progress request failed", "error", err)
	}
}
