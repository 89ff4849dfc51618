package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/etcdutil"
)

// PutSabakanURL stores sabakan's base URL (http or https, no query).
func (s *Storage) PutSabakanURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: sabakan URL %q: want http(s)://host:port", cke.ErrInvalid, raw)
	}
	if _, err := s.client.Put(ctx, KeySabakanURL, raw); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeySabakanURL, err)
	}
	return nil
}

// PutSabakanTemplate stores the cluster.yml template; the caller has
// validated it (sabakan.ValidateTemplate).
func (s *Storage) PutSabakanTemplate(ctx context.Context, t *cke.Cluster) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, KeySabakanTemplate, string(data)); err != nil {
		return fmt.Errorf("storage: put %s: %w", KeySabakanTemplate, err)
	}
	return nil
}

// SetSabakanDisabled disables or enables the integration.
func (s *Storage) SetSabakanDisabled(ctx context.Context, disabled bool) error {
	var err error
	if disabled {
		_, err = s.client.Put(ctx, KeySabakanDisabled, "true")
	} else {
		_, err = s.client.Delete(ctx, KeySabakanDisabled)
	}
	if err != nil {
		return fmt.Errorf("storage: %s: %w", KeySabakanDisabled, err)
	}
	return nil
}

// GetSabakanSettings returns the integration's settings.
func (s *Storage) GetSabakanSettings(ctx context.Context) (*SabakanSettings, error) {
	cfg, err := s.ReadConfig(ctx)
	if err != nil {
		return nil, err
	}
	return &cfg.Sabakan, nil
}

// PutGeneratedCluster stores cluster.yml as the leader, generated from
// the settings in cfg: only while cluster.yml and the constraints are what
// cfg read (an operator's concurrent change wins) and the integration is
// still enabled; cke.ErrConflict otherwise.
func (s *Storage) PutGeneratedCluster(ctx context.Context, l Leader, cfg *Config, c *cke.Cluster) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	cmps := []clientv3.Cmp{
		etcdutil.Unchanged(KeyCluster, cfg.ClusterRevision),
		etcdutil.Unchanged(KeyConstraints, cfg.ConstraintsRevision),
		etcdutil.Absent(KeySabakanDisabled),
	}
	if _, err := l.Do(ctx, cmps, clientv3.OpPut(KeyCluster, string(data))); err != nil {
		if errors.Is(err, etcdutil.ErrConflict) {
			return fmt.Errorf("storage: generated cluster.yml: %w", cke.ErrConflict)
		}
		return fmt.Errorf("storage: put generated %s: %w", KeyCluster, err)
	}
	return nil
}
