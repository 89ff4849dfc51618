package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke"
)

// MaxResourcesPerPut is how many resources PutResources stores at once:
// etcd's default limit of operations in one transaction (--max-txn-ops).
const MaxResourcesPerPut = 128

// PutResources stores user resources by key in one transaction: all of
// them or, on any error, none (ckecli resource set of a multi-document
// file).
func (s *Storage) PutResources(ctx context.Context, res map[string][]byte) error {
	if len(res) > MaxResourcesPerPut {
		return fmt.Errorf("%w: %d resources at once; etcd takes at most %d in one transaction: split the file", cke.ErrInvalid, len(res), MaxResourcesPerPut)
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		if k == "" || strings.HasPrefix(k, "/") {
			return fmt.Errorf("%w: resource key %q", cke.ErrInvalid, k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ops := make([]clientv3.Op, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, clientv3.OpPut(PrefixResources+k, string(res[k])))
	}
	if _, err := s.client.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("storage: put %d resources: %w", len(keys), err)
	}
	return nil
}
