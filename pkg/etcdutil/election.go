package etcdutil

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrNotLeader reports that a fenced write found leadership gone.
var ErrNotLeader = errors.New("etcd: no longer the leader")

// Leader is a won election. Writes made through Do succeed only while this
// process still holds the leader key, so a deposed leader cannot overwrite
// what its successor decided.
type Leader struct {
	session  *concurrency.Session
	election *concurrency.Election
}

// Campaign blocks until this process leads the election under pfx (a key
// relative to the client's namespace) or ctx ends. The leadership lasts as
// long as a session with the given TTL in seconds is kept alive.
func Campaign(ctx context.Context, client *clientv3.Client, pfx, value string, ttl int) (*Leader, error) {
	session, err := concurrency.NewSession(client, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd: new session: %w", err)
	}
	election := concurrency.NewElection(session, pfx)
	if err := election.Campaign(ctx, value); err != nil {
		session.Close()
		return nil, fmt.Errorf("etcd: campaign %s: %w", pfx, err)
	}
	return &Leader{session: session, election: election}, nil
}

// Key is the leader key held while leading.
func (l *Leader) Key() string { return l.election.Key() }

// Fence holds while l is the leader.
func (l *Leader) Fence() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.Key()), "=", l.election.Rev())
}

// Lost is closed when the session ends, after which writes through Do fail.
func (l *Leader) Lost() <-chan struct{} { return l.session.Done() }

// Do commits ops when l still leads and every cmp holds. It returns
// ErrNotLeader when leadership is gone and ErrConflict when only cmps failed.
func (l *Leader) Do(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	kv := l.session.Client().KV
	resp, err := kv.Txn(ctx).
		If(append([]clientv3.Cmp{l.Fence()}, cmps...)...).
		Then(ops...).
		Else(clientv3.OpGet(l.Key())).
		Commit()
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		return resp, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].CreateRevision != l.election.Rev() {
		return resp, ErrNotLeader
	}
	return resp, ErrConflict
}

// Resign gives up leadership and ends the session.
func (l *Leader) Resign(ctx context.Context) error {
	err := l.election.Resign(ctx)
	return errors.Join(err, l.session.Close())
}

// CurrentLeader returns the value the current leader of pfx campaigned with,
// or "" when nobody leads.
func CurrentLeader(ctx context.Context, client *clientv3.Client, pfx string) (string, error) {
	resp, err := client.Get(ctx, pfx+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
