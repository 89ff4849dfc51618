package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// IPAM returns the IPAM configuration, or an error wrapping
// sabakan.ErrNotFound when it was never set.
func (s *Store) IPAM(ctx context.Context) (*sabakan.IPAMConfig, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	c, _, _ := s.idx.config()
	if c == nil {
		return nil, fmt.Errorf("%w: the IPAM configuration is not set", sabakan.ErrNotFound)
	}
	copied := *c
	return &copied, nil
}

// ConfigView returns the IPAM and DHCP configuration as the index holds
// them now, without a request to etcd: the DHCP server's per-packet read.
// Unlike IPAM and DHCP, it does not wait for the writes acknowledged before
// the call: a PUT shows up once the index's watch delivers it (milliseconds),
// and while etcd is unreachable the view keeps answering with the last
// configuration it saw. It is never a default standing in for an unloaded
// view: Open loads the index before it returns. nil stands for a
// configuration never set (or deleted). The results are copies.
func (s *Store) ConfigView() (*sabakan.IPAMConfig, *sabakan.DHCPConfig) {
	ipam, _, dhcp := s.idx.config()
	if ipam != nil {
		copied := *ipam
		ipam = &copied
	}
	if dhcp != nil {
		copied := *dhcp
		copied.DNSServers = slices.Clone(dhcp.DNSServers)
		dhcp = &copied
	}
	return ipam, dhcp
}

// PutIPAM validates and stores the IPAM configuration. It is refused with
// sabakan.ErrConflict once any machine exists, since addresses were derived
// from the current one.
func (s *Store) PutIPAM(ctx context.Context, c *sabakan.IPAMConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	noMachines := clientv3.Compare(clientv3.CreateRevision(KeyMachines), "=", 0).WithPrefix()
	_, err = etcdutil.Commit(s.client.Txn(ctx).If(noMachines).Then(
		clientv3.OpPut(KeyIPAM, string(data)),
		s.AuditOp(ctx, sabakan.AuditIPAM, "config", "put", string(data)),
	))
	switch {
	case errors.Is(err, etcdutil.ErrConflict):
		return fmt.Errorf("%w: the IPAM configuration cannot change once machines are registered", sabakan.ErrConflict)
	case err != nil:
		return etcdErr("put ipam", err)
	}
	return nil
}

// DHCP returns the DHCP configuration, or an error wrapping
// sabakan.ErrNotFound when it was never set.
func (s *Store) DHCP(ctx context.Context) (*sabakan.DHCPConfig, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	_, _, c := s.idx.config()
	if c == nil {
		return nil, fmt.Errorf("%w: the DHCP configuration is not set", sabakan.ErrNotFound)
	}
	copied := *c
	return &copied, nil
}

// PutDHCP validates and stores the DHCP configuration.
func (s *Store) PutDHCP(ctx context.Context, c *sabakan.DHCPConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.client.Txn(ctx).Then(
		clientv3.OpPut(KeyDHCP, string(data)),
		s.AuditOp(ctx, sabakan.AuditDHCP, "config", "put", string(data)),
	).Commit()
	return etcdErr("put dhcp", err)
}
