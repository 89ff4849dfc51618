package etcdutil

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
)

// New connects to etcd as configured. The client's KV, Watcher and Lease are
// scoped to c.Prefix, so callers use keys relative to it, and every KV call is
// bounded by the request timeout.
func New(c *Config) (*clientv3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	dial, request := c.durations()
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: dial,
		Username:    c.Username,
		Password:    c.Password,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
		// Fail fast on a dead endpoint instead of waiting for TCP timeouts.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	Scope(client, c.Prefix, request)
	return client, nil
}

// Scope confines an existing client to prefix and bounds each of its KV calls
// by timeout (no bound when timeout is 0). It is how tests get the same kind
// of client as the daemons.
func Scope(client *clientv3.Client, prefix string, timeout time.Duration) {
	if prefix != "" {
		client.KV = namespace.NewKV(client.KV, prefix)
		client.Watcher = namespace.NewWatcher(client.Watcher, prefix)
		client.Lease = namespace.NewLease(client.Lease, prefix)
	}
	if timeout > 0 {
		client.KV = timeoutKV{KV: client.KV, timeout: timeout}
	}
}

// timeoutKV applies a per-call timeout; a caller's shorter deadline still wins.
type timeoutKV struct {
	clientv3.KV
	timeout time.Duration
}

func (t timeoutKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.KV.Get(ctx, key, opts...)
}

func (t timeoutKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.KV.Put(ctx, key, val, opts...)
}

func (t timeoutKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.KV.Delete(ctx, key, opts...)
}

func (t timeoutKV) Compact(ctx context.Context, rev int64, opts ...clientv3.CompactOption) (*clientv3.CompactResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.KV.Compact(ctx, rev, opts...)
}

func (t timeoutKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.KV.Do(ctx, op)
}

func (t timeoutKV) Txn(ctx context.Context) clientv3.Txn {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	return &timeoutTxn{Txn: t.KV.Txn(ctx), cancel: cancel}
}

type timeoutTxn struct {
	clientv3.Txn
	cancel context.CancelFunc
}

func (t *timeoutTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *timeoutTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *timeoutTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }

func (t *timeoutTxn) Commit() (*clientv3.TxnResponse, error) {
	defer t.cancel()
	return t.Txn.Commit()
}
