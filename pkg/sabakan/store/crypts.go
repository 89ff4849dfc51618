package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Limits of disk encryption keys.
const (
	MaxCryptKeyBytes  = 4096
	MaxCryptPathBytes = 255
)

// IsValidCryptPath reports whether path can name a disk (its /dev/disk/by-path
// name): 1-255 printable ASCII characters without '/'.
func IsValidCryptPath(path string) bool {
	return path != "" && len(path) <= MaxCryptPathBytes && !strings.ContainsFunc(path, func(r rune) bool {
		return r <= ' ' || r > '~' || r == '/'
	})
}

// PutCrypt stores the encryption key of a machine's disk. It never
// overwrites (sabakan.ErrConflict) and is refused once the machine is
// retiring or retired.
func (s *Store) PutCrypt(ctx context.Context, serial, path string, key []byte) error {
	if !IsValidCryptPath(path) {
		return fmt.Errorf("%w: invalid disk path %q: want 1-%d printable characters without '/'", sabakan.ErrBadRequest, path, MaxCryptPathBytes)
	}
	if len(key) == 0 || len(key) > MaxCryptKeyBytes {
		return fmt.Errorf("%w: the key has %d bytes: want 1-%d", sabakan.ErrBadRequest, len(key), MaxCryptKeyBytes)
	}
	_, err := s.mutate(ctx, serial, true, func(cur *current) (*change, error) {
		switch st := cur.m.Status.State; st {
		case sabakan.StateRetiring, sabakan.StateRetired:
			return nil, fmt.Errorf("%w: machine %s is %s: no new disk encryption keys are accepted", sabakan.ErrConflict, serial, st)
		}
		if slices.Contains(cur.crypts, path) {
			return nil, fmt.Errorf("%w: machine %s already has a key for disk %s", sabakan.ErrConflict, serial, path)
		}
		return &change{
			machine: keep, category: sabakan.AuditCrypts, action: "put", detail: path,
			cmps: []clientv3.Cmp{etcdutil.Absent(cryptKey(serial, path))},
			ops:  []clientv3.Op{clientv3.OpPut(cryptKey(serial, path), string(key))},
		}, nil
	})
	return err
}

// Crypt returns the encryption key of a machine's disk.
func (s *Store) Crypt(ctx context.Context, serial, path string) ([]byte, error) {
	if !sabakan.IsValidSerial(serial) || !IsValidCryptPath(path) {
		return nil, fmt.Errorf("%w: invalid serial %q or disk path %q", sabakan.ErrBadRequest, serial, path)
	}
	resp, err := s.client.Get(ctx, cryptKey(serial, path))
	if err != nil {
		return nil, etcdErr("read crypt", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: no key for disk %s of machine %s", sabakan.ErrNotFound, path, serial)
	}
	return resp.Kvs[0].Value, nil
}

// DeleteCrypts deletes every disk encryption key of a retiring machine and
// returns the disk paths whose keys it deleted.
func (s *Store) DeleteCrypts(ctx context.Context, serial string) ([]string, error) {
	var paths []string
	_, err := s.mutate(ctx, serial, true, func(cur *current) (*change, error) {
		if st := cur.m.Status.State; st != sabakan.StateRetiring {
			return nil, fmt.Errorf("%w: machine %s is %s: disk encryption keys can only be deleted while it is retiring", sabakan.ErrConflict, serial, st)
		}
		paths = cur.crypts
		return &change{
			machine: keep, category: sabakan.AuditCrypts, action: "delete", detail: strings.Join(paths, ","),
			ops: []clientv3.Op{clientv3.OpDelete(cryptPrefix(serial), clientv3.WithPrefix())},
		}, nil
	})
	if paths == nil {
		paths = []string{}
	}
	return paths, err
}
