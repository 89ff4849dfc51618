package ignition

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// KeyPrefix is the etcd prefix of templates: KeyPrefix + "<role>/<id>".
const KeyPrefix = "ignitions/"

// MaxTemplatesPerRole is how many templates of a role are kept.
const MaxTemplatesPerRole = 10

// MaxIDLength bounds template ids (etcd key and URL path parts).
const MaxIDLength = 128

// reLegacyID is what earlier versions accepted as an id, versions or not.
var reLegacyID = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z._+-]{0,127}$`)

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

// parseID parses a template id as a version the way the reference does
// (github.com/hashicorp/go-version's NewVersion: [v]N(.N)*, an optional
// pre-release and build metadata, e.g. 1.2.3, v2, 2025.03.10-12345,
// 1.0.0-rc.1+build.5). nil when id is not one.
func parseID(id string) *version.Version {
	if len(id) > MaxIDLength {
		return nil
	}
	v, err := version.NewVersion(id)
	if err != nil {
		return nil
	}
	return v
}

// checkNewID admits the id of a new template: a version, as the reference
// requires, so that "newest" means one thing.
func checkNewID(id string) error {
	if parseID(id) == nil {
		return fmt.Errorf("%w: invalid ignition id %q: want a version of at most %d characters, [v]N(.N)* with an optional -pre-release and +metadata (e.g. 1.2.3, 2025.03.10-12345)", sabakan.ErrBadRequest, id, MaxIDLength)
	}
	return nil
}

// checkID admits the id of an existing template: a version, or an id that
// earlier versions accepted (so that such templates can still be read and
// deleted).
func checkID(id string) error {
	if parseID(id) == nil && !reLegacyID.MatchString(id) {
		return fmt.Errorf("%w: invalid ignition id %q", sabakan.ErrBadRequest, id)
	}
	return nil
}

func key(role, id string) string { return KeyPrefix + role + "/" + id }

// CompareIDs is the one order of template ids: the listing's, the
// retention's (oldest dropped first) and the boot's (a machine boots its
// role's last id). Versions compare as the reference compares them
// (go-version's Compare: numeric segments, missing ones zero, a
// pre-release before its release); versions equal that way (1.0 and 1.0.0)
// by their text. Ids that are not versions, which only earlier versions of
// sabakan accepted, come before every version, by their text: they are
// never newer than a version and are the first dropped.
func CompareIDs(a, b string) int {
	va, vb := parseID(a), parseID(b)
	switch {
	case va == nil && vb == nil:
		return strings.Compare(a, b)
	case va == nil:
		return -1
	case vb == nil:
		return 1
	}
	if c := va.Compare(vb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

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
	if err := checkNewID(id); err != nil {
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
		if len(ids) > MaxTemplatesPerRole && CompareIDs(id, ids[len(ids)-MaxTemplatesPerRole]) < 0 {
			// It would be dropped in the same transaction (which etcd
			// refuses: one key twice); the reference stores and drops it.
			return fmt.Errorf("%w: ignition template %s/%s is older than the %d kept for role %s (the oldest is %s): it would be dropped at once", sabakan.ErrConflict, role, id, MaxTemplatesPerRole, role, ids[len(ids)-MaxTemplatesPerRole])
		}
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
