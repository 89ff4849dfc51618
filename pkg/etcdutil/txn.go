package etcdutil

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrConflict reports that a guarded transaction lost a race with another
// writer. The caller re-reads and decides again; Retry does this in a loop.
var ErrConflict = errors.New("etcd: conflicting concurrent update")

// maxAttempts bounds Retry so that a livelock surfaces as an error.
const maxAttempts = 50

// Unchanged holds while key's ModRevision is still rev; rev 0 means the key
// must not exist.
func Unchanged(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// Absent holds while key does not exist.
func Absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// Commit commits t and turns a failed comparison into ErrConflict.
func Commit(t clientv3.Txn) (*clientv3.TxnResponse, error) {
	resp, err := t.Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return resp, ErrConflict
	}
	return resp, nil
}

// Retry calls f until it returns anything but ErrConflict, backing off a
// little between attempts so that competing writers spread out.
func Retry(ctx context.Context, f func(ctx context.Context) error) error {
	backoff := time.Millisecond
	for range maxAttempts {
		err := f(ctx)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		jitter := time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff + jitter):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
	return ErrConflict
}

// ErrNoChange, returned by an Update function, leaves the key as it is.
var ErrNoChange = errors.New("etcd: no change")

// Update applies fn to the current value of key (nil when absent) and writes
// the result unless key changed meanwhile, retrying on conflict. fn must be a
// pure function of its input: it may run several times. It returns the
// revision of the write, or of the read when fn returned ErrNoChange.
func Update(ctx context.Context, kv clientv3.KV, key string, fn func(cur []byte) ([]byte, error)) (int64, error) {
	var rev int64
	err := Retry(ctx, func(ctx context.Context) error {
		resp, err := kv.Get(ctx, key)
		if err != nil {
			return err
		}
		var cur []byte
		var modRev int64
		if len(resp.Kvs) == 1 {
			cur, modRev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		next, err := fn(cur)
		if errors.Is(err, ErrNoChange) {
			rev = resp.Header.Revision
			return nil
		}
		if err != nil {
			return err
		}
		tresp, err := Commit(kv.Txn(ctx).If(Unchanged(key, modRev)).Then(clientv3.OpPut(key, string(next))))
		if err != nil {
			return err
		}
		rev = tresp.Header.Revision
		return nil
	})
	return rev, err
}
