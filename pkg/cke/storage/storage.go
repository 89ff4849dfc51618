package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/etcdutil"
)

// Storage reads and writes the engine's keys through a client scoped to
// its prefix (etcdutil.Scope).
type Storage struct {
	client *clientv3.Client
}

// New returns the storage on client, whose keys are relative to the
// engine's prefix.
func New(client *clientv3.Client) *Storage { return &Storage{client: client} }

// Client is the underlying client (elections, watches).
func (s *Storage) Client() *clientv3.Client { return s.client }

// Ping checks that etcd answers (the daemon's health).
func (s *Storage) Ping(ctx context.Context) error {
	if _, err := s.client.Get(ctx, KeyCluster, clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("storage: etcd: %w", err)
	}
	return nil
}

// Leader is a won election: writes through Do commit only while it leads
// (etcdutil.Leader).
type Leader interface {
	Do(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error)
}

// Config is the declaration the engine works from, read at one revision.
type Config struct {
	Cluster     *cke.Cluster // nil until set
	Constraints *cke.Constraints
	// Resources are the users' resources by key (kind/namespace/name).
	Resources map[string][]byte
	// Managed are the addresses the engine has run services on.
	Managed []string
	// Sabakan are the sabakan integration's settings.
	Sabakan SabakanSettings
	// ClusterRevision and ConstraintsRevision are the keys' modification
	// revisions (0 when unset), for guarded writes.
	ClusterRevision, ConstraintsRevision int64
	Revision                             int64
}

// SabakanSettings configure the sabakan integration.
type SabakanSettings struct {
	URL      string       `json:"url,omitempty"`
	Template *cke.Cluster `json:"template,omitempty"`
	Disabled bool         `json:"disabled"`
}

// Enabled reports whether the integration runs: a URL and a template set,
// and not disabled.
func (s SabakanSettings) Enabled() bool { return s.URL != "" && s.Template != nil && !s.Disabled }

// ReadConfig reads cluster.yml, constraints, resources and the managed
// nodes in one transaction.
func (s *Storage) ReadConfig(ctx context.Context) (*Config, error) {
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(KeyCluster), clientv3.OpGet(KeyConstraints),
		clientv3.OpGet(PrefixResources, clientv3.WithPrefix()), clientv3.OpGet(KeyManaged),
		clientv3.OpGet(KeySabakanURL), clientv3.OpGet(KeySabakanTemplate), clientv3.OpGet(KeySabakanDisabled),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("storage: read config: %w", err)
	}
	cfg := &Config{Constraints: cke.DefaultConstraints(), Resources: map[string][]byte{}, Revision: resp.Header.Revision}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		cfg.Cluster = new(cke.Cluster)
		if err := json.Unmarshal(kvs[0].Value, cfg.Cluster); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", KeyCluster, err)
		}
		cfg.ClusterRevision = kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, cfg.Constraints); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", KeyConstraints, err)
		}
		cfg.ConstraintsRevision = kvs[0].ModRevision
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		cfg.Resources[string(kv.Key[len(PrefixResources):])] = kv.Value
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &cfg.Managed); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", KeyManaged, err)
		}
	}
	if kvs := resp.Responses[4].GetResponseRange().Kvs; len(kvs) > 0 {
		cfg.Sabakan.URL = string(kvs[0].Value)
	}
	if kvs := resp.Responses[5].GetResponseRange().Kvs; len(kvs) > 0 {
		cfg.Sabakan.Template = new(cke.Cluster)
		if err := json.Unmarshal(kvs[0].Value, cfg.Sabakan.Template); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", KeySabakanTemplate, err)
		}
	}
	cfg.Sabakan.Disabled = len(resp.Responses[6].GetResponseRange().Kvs) > 0
	return cfg, nil
}

// PutCluster stores c after validating it and checking the constraints
// in force, in one transaction that fails with cke.ErrConflict when the
// constraints changed meanwhile. Nothing is stored when c is invalid.
func (s *Storage) PutCluster(ctx context.Context, c *cke.Cluster) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.retry(ctx, func(ctx context.Context) error {
		cons, rev, err := s.constraints(ctx)
		if err != nil {
			return err
		}
		if err := cons.Check(c); err != nil {
			return err
		}
		_, err = etcdutil.Commit(s.client.Txn(ctx).If(etcdutil.Unchanged(KeyConstraints, rev)).Then(clientv3.OpPut(KeyCluster, string(data))))
		return err
	})
}

// GetCluster returns cluster.yml, or cke.ErrNotFound.
func (s *Storage) GetCluster(ctx context.Context) (*cke.Cluster, error) {
	var c cke.Cluster
	if err := s.getJSON(ctx, KeyCluster, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// PutConstraints stores c. It is not checked against the stored
// cluster.yml: changing the number of control planes takes both a new
// constraint and a new cluster.yml, and the engine does nothing while the
// two disagree (ckecli status says so).
func (s *Storage) PutConstraints(ctx context.Context, c *cke.Constraints) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, KeyConstraints, string(data)); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeyConstraints, err)
	}
	return nil
}

// GetConstraints returns the constraints in force (the defaults when none
// were set).
func (s *Storage) GetConstraints(ctx context.Context) (*cke.Constraints, error) {
	c, _, err := s.constraints(ctx)
	return c, err
}

func (s *Storage) constraints(ctx context.Context) (*cke.Constraints, int64, error) {
	resp, err := s.client.Get(ctx, KeyConstraints)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: get %s: %w", KeyConstraints, err)
	}
	c := cke.DefaultConstraints()
	if len(resp.Kvs) == 0 {
		return c, 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, c); err != nil {
		return nil, 0, fmt.Errorf("storage: %s: %w", KeyConstraints, err)
	}
	return c, resp.Kvs[0].ModRevision, nil
}

func (s *Storage) retry(ctx context.Context, f func(context.Context) error) error {
	err := etcdutil.Retry(ctx, f)
	if errors.Is(err, etcdutil.ErrConflict) {
		return fmt.Errorf("storage: %w", cke.ErrConflict)
	}
	return err
}

func (s *Storage) getJSON(ctx context.Context, key string, v any) error {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("storage: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("storage: %s: %w", key, cke.ErrNotFound)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return fmt.Errorf("storage: %s: %w", key, err)
	}
	return nil
}

// VaultConfig is how the engine logs in to Vault.
type VaultConfig struct {
	Endpoint string `json:"endpoint"`
	// CACert verifies Vault's certificate (PEM); empty: the system roots.
	CACert   string `json:"ca-cert,omitempty"`
	RoleID   string `json:"role-id"`
	SecretID string `json:"secret-id"`
}

// PutVaultConfig stores the engine's Vault settings.
func (s *Storage) PutVaultConfig(ctx context.Context, c *VaultConfig) error {
	if c.Endpoint == "" || c.RoleID == "" || c.SecretID == "" {
		return fmt.Errorf("%w: vault config needs endpoint, role-id and secret-id", cke.ErrInvalid)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, KeyVault, string(data)); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeyVault, err)
	}
	return nil
}

// GetVaultConfig returns the Vault settings, or cke.ErrNotFound.
func (s *Storage) GetVaultConfig(ctx context.Context) (*VaultConfig, error) {
	var c VaultConfig
	if err := s.getJSON(ctx, KeyVault, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// PutSSHPublicKey stores the engine's SSH public key.
func (s *Storage) PutSSHPublicKey(ctx context.Context, key string) error {
	if _, err := s.client.Put(ctx, KeySSHPublicKey, key); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeySSHPublicKey, err)
	}
	return nil
}

// GetSSHPublicKey returns the engine's SSH public key, or cke.ErrNotFound
// before ckecli vault init.
func (s *Storage) GetSSHPublicKey(ctx context.Context) (string, error) {
	resp, err := s.client.Get(ctx, KeySSHPublicKey)
	if err != nil {
		return "", fmt.Errorf("storage: get %s: %w", KeySSHPublicKey, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("storage: %s: %w (run ckecli vault init)", KeySSHPublicKey, cke.ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// PutCA stores a CA certificate under name.
func (s *Storage) PutCA(ctx context.Context, name string, pem []byte) error {
	if _, err := s.client.Put(ctx, PrefixCA+name, string(pem)); err != nil {
		return fmt.Errorf("storage: put %s%s: %w", PrefixCA, name, err)
	}
	return nil
}

// GetCA returns the CA certificate name, or cke.ErrNotFound.
func (s *Storage) GetCA(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.client.Get(ctx, PrefixCA+name)
	if err != nil {
		return nil, fmt.Errorf("storage: get %s%s: %w", PrefixCA, name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("storage: CA %s: %w", name, cke.ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// Lookup returns the pinned SSH host key of addr (nodeexec.HostKeyStore).
func (s *Storage) Lookup(addr string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.client.Get(ctx, PrefixHostKeys+addr)
	if err != nil {
		return nil, false, fmt.Errorf("storage: host key of %s: %w", addr, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// Pin records the host key of addr unless one is recorded already; it
// fails with cke.ErrConflict when another key was pinned meanwhile.
func (s *Storage) Pin(addr string, key []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := PrefixHostKeys + addr
	resp, err := s.client.Txn(ctx).If(etcdutil.Absent(k)).Then(clientv3.OpPut(k, string(key))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("storage: pin host key of %s: %w", addr, err)
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || string(kvs[0].Value) != string(key) {
			return fmt.Errorf("storage: host key of %s pinned concurrently: %w", addr, cke.ErrConflict)
		}
	}
	return nil
}

// ForgetHostKey removes the pinned host key of addr (a reinstalled node).
func (s *Storage) ForgetHostKey(ctx context.Context, addr string) (bool, error) {
	resp, err := s.client.Delete(ctx, PrefixHostKeys+addr)
	if err != nil {
		return false, fmt.Errorf("storage: forget host key of %s: %w", addr, err)
	}
	return resp.Deleted > 0, nil
}

// PutResource stores a user resource under key.
func (s *Storage) PutResource(ctx context.Context, key string, data []byte) error {
	if _, err := s.client.Put(ctx, PrefixResources+key, string(data)); err != nil {
		return fmt.Errorf("storage: put resource %s: %w", key, err)
	}
	return nil
}

// DeleteResource removes a user resource; cke.ErrNotFound when absent.
func (s *Storage) DeleteResource(ctx context.Context, key string) error {
	resp, err := s.client.Delete(ctx, PrefixResources+key)
	if err != nil {
		return fmt.Errorf("storage: delete resource %s: %w", key, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("storage: resource %s: %w", key, cke.ErrNotFound)
	}
	return nil
}

// SetManaged records, as the leader, the nodes the engine runs services on.
func (s *Storage) SetManaged(ctx context.Context, l Leader, addrs []string) error {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	data, _ := json.Marshal(slices.Compact(addrs))
	if _, err := l.Do(ctx, nil, clientv3.OpPut(KeyManaged, string(data))); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeyManaged, err)
	}
	return nil
}

// Status is the leader's last decision, for ckecli status.
type Status struct {
	Leader  string          `json:"leader"`
	Phase   decide.Phase    `json:"phase"`
	Ops     []decide.Op     `json:"ops,omitempty"`
	Waiting string          `json:"waiting,omitempty"`
	Nodes   map[string]bool `json:"nodes_reachable,omitempty"`
	Error   string          `json:"error,omitempty"`
	// Sabakan is the sabakan integration's last run, when it is enabled.
	Sabakan *SabakanReport `json:"sabakan,omitempty"`
	Time    time.Time      `json:"time"`
}

// SabakanReport is what one run of the sabakan integration did.
type SabakanReport struct {
	// Machines is how many machines sabakan listed.
	Machines int      `json:"machines"`
	Changes  []string `json:"changes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Error says why no cluster.yml could be generated.
	Error string `json:"error,omitempty"`
}

// PutStatus records the leader's decision.
func (s *Storage) PutStatus(ctx context.Context, l Leader, st *Status) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := l.Do(ctx, nil, clientv3.OpPut(KeyStatus, string(data))); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeyStatus, err)
	}
	return nil
}

// GetStatus returns the last decision, or cke.ErrNotFound.
func (s *Storage) GetStatus(ctx context.Context) (*Status, error) {
	var st Status
	if err := s.getJSON(ctx, KeyStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
