package worker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/deb"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/worker"
)

// lostAckKV commits the first transaction that writes a key under prefix
// and then reports a timeout, as when etcd applied a request whose answer
// never reached the client.
type lostAckKV struct {
	clientv3.KV
	prefix string
	done   atomic.Bool
}

func (k *lostAckKV) Txn(ctx context.Context) clientv3.Txn {
	return &lostAckTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type lostAckTxn struct {
	clientv3.Txn
	kv  *lostAckKV
	hit bool
}

func (t *lostAckTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *lostAckTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *lostAckTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.HasPrefix(string(op.KeyBytes()), t.kv.prefix) {
			t.hit = true
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *lostAckTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil && t.hit && t.kv.done.CompareAndSwap(false, true) {
		return nil, context.DeadlineExceeded
	}
	return resp, err
}

// TestPostWithLostAnswer loses the answer to the worker's first status post
// of a request although etcd applied it. The status is this process's own,
// so the worker must go on and complete instead of taking it for the trace
// of a process that died mid-update and aborting.
func TestPostWithLostAnswer(t *testing.T) {
	ctx := context.Background()
	prefix := t.Name() + "/"
	st := storage.New(etcdtest.NewClient(t, prefix))
	if err := st.SetConfig(ctx, neco.KeyEnv, string(neco.EnvTest)); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := storage.PutRequest(snap, &neco.UpdateRequest{ID: snap.Revision, Version: neco.TestVersion, Servers: []int{0}, StartedAt: time.Now()})
	if _, err := st.Client.Txn(ctx).If(g.Cmps...).Then(g.Ops...).Commit(); err != nil {
		t.Fatal(err)
	}

	client := etcdtest.NewClient(t, prefix)
	lost := &lostAckKV{KV: client.KV, prefix: storage.StatusKey(0)}
	client.KV = lost
	root := deb.RootInstaller{Root: t.TempDir()}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	w := &worker.Worker{LRN: 0, Storage: storage.New(client), Installer: root, Steps: []worker.Step{worker.FinalStep()}, PollInterval: 50 * time.Millisecond}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		snap, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s := snap.CurrentStatuses()[0]; s != nil && s.Cond != neco.CondRunning {
			if s.Cond != neco.CondCompleted {
				t.Fatalf("status %s at step %d: %s", s.Cond, s.Step, s.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !lost.done.Load() {
		t.Fatal("no answer was lost: the test proves nothing")
	}
}
