package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
)

// ErrNotInEtcd says a key the caller needs is absent.
var ErrNotInEtcd = errors.New("not in etcd")

// PutVaultSecrets stores what initialising Vault returned, in one
// transaction: the unseal key and the initial root token.
func (s *Storage) PutVaultSecrets(ctx context.Context, unsealKey, rootToken string) error {
	_, err := s.Client.Txn(ctx).Then(
		clientv3.OpPut(VaultUnsealKey, unsealKey),
		clientv3.OpPut(SetupVaultRootToken, rootToken),
	).Commit()
	if err != nil {
		return fmt.Errorf("storage: put vault's unseal key and root token: %w", err)
	}
	return nil
}

// UnsealKey is Vault's unseal key; it fails when the key is absent.
func (s *Storage) UnsealKey(ctx context.Context) (string, error) {
	return s.secret(ctx, VaultUnsealKey)
}

// SetupRootToken is Vault's initial root token, kept while setup runs; it
// fails when the token is absent (revoked and deleted at the end of setup).
func (s *Storage) SetupRootToken(ctx context.Context) (string, error) {
	return s.secret(ctx, SetupVaultRootToken)
}

// DeleteSetupRootToken deletes Vault's initial root token (once revoked).
func (s *Storage) DeleteSetupRootToken(ctx context.Context) error {
	if _, err := s.Client.Delete(ctx, SetupVaultRootToken); err != nil {
		return fmt.Errorf("storage: delete vault's root token: %w", err)
	}
	return nil
}

// secret reads key and fails when it is absent.
func (s *Storage) secret(ctx context.Context, key string) (string, error) {
	resp, err := s.Client.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", &notInEtcdError{key: key}
	}
	return string(resp.Kvs[0].Value), nil
}

// notInEtcdError names the absent key as neco's operators see it.
type notInEtcdError struct{ key string }

func (e *notInEtcdError) Error() string { return DefaultPrefix + e.key + " is not in etcd" }
func (e *notInEtcdError) Unwrap() error { return ErrNotInEtcd }

// FinishStage records that boot server lrn finished setup stage stage.
func (s *Storage) FinishStage(ctx context.Context, lrn, stage int) error {
	_, err := s.Client.Put(ctx, FinishKey(lrn), strconv.Itoa(stage))
	return err
}

// FinishedStages maps each boot server that recorded a setup stage to the
// last stage it finished. Malformed records are left out.
func (s *Storage) FinishedStages(ctx context.Context) (map[int]int, error) {
	resp, err := s.Client.Get(ctx, SetupFinished, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[int]int{}
	for _, kv := range resp.Kvs {
		lrn, err1 := strconv.Atoi(string(kv.Key[len(SetupFinished):]))
		stage, err2 := strconv.Atoi(string(kv.Value))
		if err1 == nil && err2 == nil {
			out[lrn] = stage
		}
	}
	return out, nil
}

// BootServerValues maps every registered boot server's LRN to the value of
// its registration (bootstrap stores the address; it may be empty).
// Malformed keys are left out, as Snapshot leaves them out.
func (s *Storage) BootServerValues(ctx context.Context) (map[int]string, error) {
	resp, err := s.Client.Get(ctx, InfoBootServers, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("storage: list boot servers: %w", err)
	}
	out := map[int]string{}
	for _, kv := range resp.Kvs {
		if lrn, ok := lrnOf(string(kv.Key), InfoBootServers); ok {
			out[lrn] = string(kv.Value)
		}
	}
	return out, nil
}

// FirstRequest registers every boot server of addrs (LRN → address) not
// registered yet, records version as the latest release when none is, and
// writes the first update request, for version on every server of addrs,
// when there is none: all in one transaction, retried on conflicts.
// Running it again changes nothing.
//
// Registering every server together with the request matters: the updater
// reconfigures a request whose servers differ from the registered ones,
// and the first worker of a request removes the etcd members of servers
// left out of it. Were only the setup leader registered when its updater
// started, the request would shrink to the leader alone and the other
// servers' etcd members would be removed.
func (s *Storage) FirstRequest(ctx context.Context, addrs map[int]string, version string) error {
	lrns := make([]int, 0, len(addrs))
	for lrn := range addrs {
		lrns = append(lrns, lrn)
	}
	slices.Sort(lrns)
	return etcdutil.Retry(ctx, func(ctx context.Context) error {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			return err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, lrn := range lrns {
			if !slices.Contains(snap.BootServers, lrn) {
				ops = append(ops, clientv3.OpPut(BootServerKey(lrn), addrs[lrn]))
			}
		}
		if snap.Latest == "" {
			g := SetLatest(snap, version)
			cmps, ops = append(cmps, g.Cmps...), append(ops, g.Ops...)
		}
		if snap.Request == nil {
			g := PutRequest(snap, &neco.UpdateRequest{
				ID: snap.Revision, Version: version, Servers: lrns, StartedAt: time.Now().UTC(),
			})
			cmps, ops = append(cmps, g.Cmps...), append(ops, g.Ops...)
		}
		if len(ops) == 0 {
			return nil
		}
		_, err = etcdutil.Commit(s.Client.Txn(ctx).If(cmps...).Then(ops...))
		return err
	})
}

// Ping is a linearizable read of one key, counted, not fetched: it
// succeeds when etcd answers with a quorum (the state setter's health
// check, setup's wait for etcd).
func (s *Storage) Ping(ctx context.Context) error {
	_, err := s.Client.Get(ctx, LeaderStateSetter, clientv3.WithCountOnly())
	return err
}
