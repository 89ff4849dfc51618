package etcdutil

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrSchemaTooNew reports data written by a newer release than this binary.
var ErrSchemaTooNew = errors.New("etcd: schema is newer than this program supports")

// Migration upgrades the data under a client's namespace by one version.
type Migration func(ctx context.Context, client *clientv3.Client) error

// EnsureSchema brings the schema version stored at key up to want. An empty
// store is stamped with want; an older one is migrated step by step, where
// migrations[n] moves version n to n+1. Several processes may start at once:
// the work runs under an etcd mutex at key+"-lock/" and each step re-reads
// the version, so every migration runs exactly once.
func EnsureSchema(ctx context.Context, client *clientv3.Client, key string, want int, migrations map[int]Migration) error {
	if v, _, err := schemaVersion(ctx, client, key); err != nil || v == want {
		return err
	}
	session, err := concurrency.NewSession(client, concurrency.WithTTL(30), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer session.Close()
	mu := concurrency.NewMutex(session, key+"-lock/")
	if err := mu.Lock(ctx); err != nil {
		return fmt.Errorf("etcd: lock schema: %w", err)
	}
	defer mu.Unlock(context.WithoutCancel(ctx))

	for {
		v, exists, err := schemaVersion(ctx, client, key)
		switch {
		case err != nil:
			return err
		case v == want:
			return nil
		case v > want:
			return fmt.Errorf("%w: found version %d, want %d", ErrSchemaTooNew, v, want)
		case !exists:
			v = want
		default:
			m := migrations[v]
			if m == nil {
				return fmt.Errorf("etcd: no migration from schema version %d", v)
			}
			if err := m(ctx, client); err != nil {
				return fmt.Errorf("etcd: migrate schema from version %d: %w", v, err)
			}
			v++
		}
		_, err = Commit(client.Txn(ctx).If(mu.IsOwner()).Then(clientv3.OpPut(key, strconv.Itoa(v))))
		if err != nil {
			return fmt.Errorf("etcd: write schema version: %w", err)
		}
	}
}

// schemaVersion reads the version at key; a missing key is version 0.
func schemaVersion(ctx context.Context, client *clientv3.Client, key string) (int, bool, error) {
	resp, err := client.Get(ctx, key)
	if err != nil {
		return 0, false, err
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	v, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil {
		return 0, true, fmt.Errorf("etcd: bad schema version %q at %s", resp.Kvs[0].Value, key)
	}
	return v, true, nil
}
