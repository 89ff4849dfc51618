package ignition

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// KeyPrefix is the etcd prefix of templates: KeyPrefix + "<role>/<id>".
const KeyPrefix = "ignitions/"

// MaxTemplatesPerRole is how many templates of a role are kept.
const MaxTemplatesPerRole = 10

var reID = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z._+-]{0,127}$`)

// AuditFunc returns the operation that records an audit entry.
type AuditFunc func(ctx context.Context, cat sabakan.AuditCategory, instance, action, detail string) clientv3.Op

// Store keeps templates in etcd.
type Store struct {
	client *clientv3.Client
	audit  AuditFunc
}

// NewStore returns a store over a namespaced client; audit may be nil.
func NewStore(client *clientv3.Client, audit AuditFunc) *Store {
	return &Store{client: client, audit: audit}
}

func checkRole(role string) error {
	if !sabakan.IsValidRole(role) {
		return fmt.Errorf("%w: invalid role %q", sabakan.ErrBadRequest, role)
	}
	return nil
}

func checkID(id string) error {
	if !reID.MatchString(id) {
		return fmt.Errorf("%w: invalid ignition id %q: want [0-9a-zA-Z][0-9a-zA-Z._+-]*", sabakan.ErrBadRequest, id)
	}
	return nil
}

func key(role, id string) string { return KeyPrefix + role + "/" + id }

// CompareIDs orders ids as versions: runs of digits compare as numbers,
// everything else as text ("1.9.0" < "1.10.0" < "1.10.0-rc" ordering by
// parts).
func CompareIDs(a, b string) int {
	pa, pb := splitVersion(a), splitVersion(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, errx := strconv.ParseUint(x, 10, 64)
		ny, erry := strconv.ParseUint(y, 10, 64)
		var c int
		if errx == nil && erry == nil {
			c = cmpU(nx, ny)
		} else {
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func splitVersion(s string) []string {
	var parts []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || isDigit(s[i]) != isDigit(s[i-1]) {
			parts = append(parts, s[start:i])
			start = i
		}
	}
	return parts
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// IDs returns the ids of a role's templates, oldest first (CompareIDs);
// nil when the role has none, which the API answers as null (200), as the
// reference does.
func (s *Store) IDs(ctx context.Context, role string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	resp, err := s.client.Get(ctx, KeyPrefix+role+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), KeyPrefix+role+"/"))
	}
	slices.SortFunc(ids, CompareIDs)
	return ids, nil
}

// Get returns a template.
func (s *Store) Get(ctx context.Context, role, id string) (*Template, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	resp, err := s.client.Get(ctx, key(role, id))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: ignition template %s/%s", sabakan.ErrNotFound, role, id)
	}
	t := new(Template)
	if err := json.Unmarshal(resp.Kvs[0].Value, t); err != nil {
		return nil, fmt.Errorf("ignition: template %s/%s: %w", role, id, err)
	}
	return t, nil
}

// Newest returns the id of a role's newest template: the last of IDs.
func (s *Store) Newest(ctx context.Context, role string) (string, error) {
	ids, err := s.IDs(ctx, role)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("%w: no ignition templates for role %s", sabakan.ErrNotFound, role)
	}
	return ids[len(ids)-1], nil
}

// Put validates and stores a new template. It never overwrites (409) and
// drops the oldest templates of the role beyond MaxTemplatesPerRole, in
// the same transaction.
func (s *Store) Put(ctx context.Context, role, id string, t *Template) error {
	if err := checkRole(role); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	if t.Meta == nil {
		t.Meta = map[string]any{}
	}
	val, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("%w: %v", sabakan.ErrBadRequest, err)
	}
	if len(val) > MaxTemplateSize {
		return fmt.Errorf("%w: template of %d bytes is over %d", sabakan.ErrBadRequest, len(val), MaxTemplateSize)
	}
	if err := Validate(t); err != nil {
		return err
	}
	return etcdutil.Retry(ctx, func(ctx context.Context) error {
		resp, err := s.client.Get(ctx, KeyPrefix+role+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		var ids []string
		cmps := []clientv3.Cmp{etcdutil.Absent(key(role, id))}
		for _, kv := range resp.Kvs {
			ids = append(ids, strings.TrimPrefix(string(kv.Key), KeyPrefix+role+"/"))
			cmps = append(cmps, etcdutil.Unchanged(string(kv.Key), kv.ModRevision))
		}
		if slices.Contains(ids, id) {
			return fmt.Errorf("%w: ignition template %s/%s exists", sabakan.ErrConflict, role, id)
		}
		ids = append(ids, id)
		slices.SortFunc(ids, CompareIDs)
		ops := []clientv3.Op{clientv3.OpPut(key(role, id), string(val))}
		for len(ids) > MaxTemplatesPerRole {
			ops = append(ops, clientv3.OpDelete(key(role, ids[0])))
			ids = ids[1:]
		}
		if s.audit != nil {
			ops = append(ops, s.audit(ctx, sabakan.AuditIgnition, role, "put", id))
		}
		// Absent(key) alone fails when the id exists; the others catch a
		// concurrent change of the role's set.
		_, err = etcdutil.Commit(s.client.Txn(ctx).If(cmps...).Then(ops...))
		return err
	})
}

// Delete removes a template.
func (s *Store) Delete(ctx context.Context, role, id string) error {
	if err := checkRole(role); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	k := key(role, id)
	ops := []clientv3.Op{clientv3.OpDelete(k)}
	if s.audit != nil {
		ops = append(ops, s.audit(ctx, sabakan.AuditIgnition, role, "delete", id))
	}
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: ignition template %s/%s", sabakan.ErrNotFound, role, id)
	}
	return nil
}

// RenderFor renders the template role/id for machine m; ErrNotFound when
// there is no such template.
func (s *Store) RenderFor(ctx context.Context, m *sabakan.Machine, id string, urls URLs) ([]byte, error) {
	t, err := s.Get(ctx, m.Spec.Role, id)
	if err != nil {
		return nil, err
	}
	out, err := Render(t, m, urls)
	if err != nil {
		// A stored template rendered for a dummy machine; one that fails
		// for a real one is a server-side problem.
		return nil, fmt.Errorf("ignition: render %s/%s for %s: %v", m.Spec.Role, id, m.Spec.Serial, err)
	}
	return out, nil
}
