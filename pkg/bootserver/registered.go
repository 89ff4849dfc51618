package bootserver

import (
	"context"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/neco/storage"
)

// Registered lists the registered boot servers (info/bootservers/ in
// etcd), sorted by LRN; a registration without an address gets the one the
// cluster description c gives. client is scoped to /neco/.
func Registered(ctx context.Context, client *clientv3.Client, c *Cluster) ([]Server, error) {
	values, err := storage.New(client).BootServerValues(ctx)
	if err != nil {
		return nil, err
	}
	var out []Server
	for lrn, addr := range values {
		s := Server{LRN: lrn, Address: addr}
		if s.Address == "" {
			if s, err = c.Lookup(lrn); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Server) int { return a.LRN - b.LRN })
	return out, nil
}
