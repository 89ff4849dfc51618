package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrUnknownKind is the error, wrapped, for a kind the API does not serve
// (yet: a CustomResourceDefinition may add it).
var ErrUnknownKind = errors.New("unknown kind")

// DefaultNamespace is the namespace of a namespaced object that names none,
// as with kubectl.
const DefaultNamespace = "default"

// resource is the REST resource serving a kind.
type resource struct {
	// gvPath is the group version's path: /api/v1, /apis/apps/v1.
	gvPath string
	// name is the resource's plural name: configmaps, deployments.
	name       string
	namespaced bool
}

// path is the path of the object ns/name (ns is ignored for a
// cluster-scoped resource).
func (r resource) path(ns, name string) string {
	p := r.gvPath
	if r.namespaced {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	return p + "/" + r.name + "/" + url.PathEscape(name)
}

// groupVersionPath is the path of an apiVersion's resource list.
func groupVersionPath(apiVersion string) (string, error) {
	group, version, grouped := strings.Cut(apiVersion, "/")
	if !grouped {
		group, version = "", apiVersion
	}
	if version == "" || strings.ContainsAny(version, "/?#%") || (grouped && (group == "" || strings.ContainsAny(group, "?#%"))) {
		return "", fmt.Errorf("bad apiVersion %q", apiVersion)
	}
	if !grouped {
		return "/api/" + version, nil
	}
	return "/apis/" + group + "/" + version, nil
}

// resource finds the resource serving apiVersion and kind by discovery.
// The resource lists are cached per group version; a kind not in the cached
// list has the list read again, once, to find kinds added since (by a
// CustomResourceDefinition). Only the group version of apiVersion is read,
// not every one the API serves.
func (c *Client) resource(ctx context.Context, apiVersion, kind string) (resource, error) {
	gvPath, err := groupVersionPath(apiVersion)
	if err != nil {
		return resource{}, err
	}
	c.discoveryMu.Lock()
	kinds := c.discovery[gvPath]
	c.discoveryMu.Unlock()
	if r, ok := kinds[kind]; ok {
		return r, nil
	}
	kinds, err = c.discover(ctx, gvPath)
	if err != nil {
		if IsNotFound(err) {
			return resource{}, fmt.Errorf("%w %s %s (the API serves no %s)", ErrUnknownKind, apiVersion, kind, apiVersion)
		}
		return resource{}, fmt.Errorf("discovery: %w", err)
	}
	if r, ok := kinds[kind]; ok {
		return r, nil
	}
	return resource{}, fmt.Errorf("%w %s %s (not among the kinds of %s)", ErrUnknownKind, apiVersion, kind, apiVersion)
}

// forget drops the cached resource list of gvPath, whose resources may be
// gone: the next use reads it again.
func (c *Client) forget(gvPath string) {
	c.discoveryMu.Lock()
	delete(c.discovery, gvPath)
	c.discoveryMu.Unlock()
}

// discover reads the resource list at gvPath and caches it.
func (c *Client) discover(ctx context.Context, gvPath string) (map[string]resource, error) {
	var list struct {
		Resources []struct {
			Name       string `json:"name"`
			Namespaced bool   `json:"namespaced"`
			Kind       string `json:"kind"`
		} `json:"resources"`
	}
	if err := c.Get(ctx, gvPath, &list); err != nil {
		return nil, err
	}
	kinds := map[string]resource{}
	for _, r := range list.Resources {
		if strings.Contains(r.Name, "/") {
			continue // a subresource: pods/log, deployments/scale
		}
		kinds[r.Kind] = resource{gvPath: gvPath, name: r.Name, namespaced: r.Namespaced}
	}
	c.discoveryMu.Lock()
	c.discovery[gvPath] = kinds
	c.discoveryMu.Unlock()
	return kinds, nil
}

// objectPath is the path of an object found by discovery; an empty
// namespace of a namespaced kind is DefaultNamespace.
func (c *Client) objectPath(ctx context.Context, apiVersion, kind, ns, name string) (string, error) {
	if name == "" {
		// The path of the collection: DELETE there deletes them all.
		return "", errors.New("empty name")
	}
	r, err := c.resource(ctx, apiVersion, kind)
	if err != nil {
		return "", err
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	return r.path(ns, name), nil
}

// Apply creates or updates the object of manifest (YAML or JSON, one
// object) by server-side apply as fieldManager, and returns the object as
// the API stored it. A namespaced object without namespace goes to
// DefaultNamespace; a cluster-scoped one must have none. With force, fields
// other managers own are taken over; without, changing them is a conflict
// (IsConflict). The kind is found by discovery; one the API does not serve
// is ErrUnknownKind.
func (c *Client) Apply(ctx context.Context, manifest []byte, fieldManager string, force bool) (Object, error) {
	if fieldManager == "" {
		return nil, errors.New("kubeapi: apply: empty field manager")
	}
	obj, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	id := obj.Kind() + " " + obj.Name()
	if ns := obj.Namespace(); ns != "" {
		id = obj.Kind() + " " + ns + "/" + obj.Name()
	}
	r, err := c.resource(ctx, obj.APIVersion(), obj.Kind())
	if err != nil {
		return nil, fmt.Errorf("kubeapi: apply %s: %w", id, err)
	}
	meta := obj["metadata"].(map[string]any)
	switch {
	case r.namespaced && obj.Namespace() == "":
		meta["namespace"] = DefaultNamespace
	case !r.namespaced && obj.Namespace() != "":
		return nil, fmt.Errorf("kubeapi: apply %s: %s is cluster-scoped but metadata.namespace is set", id, obj.Kind())
	}
	var out json.RawMessage
	if err := c.applyJSON(ctx, r.path(obj.Namespace(), obj.Name()), obj, fieldManager, force, &out); err != nil {
		if IsNotFound(err) {
			// Apply creates what does not exist: the namespace is missing,
			// or the resource (its CRD deleted since discovery).
			c.forget(r.gvPath)
		}
		return nil, err
	}
	return decodeObject(out)
}

// GetObject reads an object of any kind; an empty namespace of a namespaced
// kind is DefaultNamespace.
func (c *Client) GetObject(ctx context.Context, apiVersion, kind, namespace, name string) (Object, error) {
	path, err := c.objectPath(ctx, apiVersion, kind, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: get %s %s: %w", kind, name, err)
	}
	var out json.RawMessage
	if err := c.Get(ctx, path, &out); err != nil {
		return nil, err
	}
	return decodeObject(out)
}

// Delete deletes an object of any kind (its dependents in the background);
// one that does not exist is not an error. An empty namespace of a
// namespaced kind is DefaultNamespace.
func (c *Client) Delete(ctx context.Context, apiVersion, kind, namespace, name string) error {
	path, err := c.objectPath(ctx, apiVersion, kind, namespace, name)
	if err != nil {
		return fmt.Errorf("kubeapi: delete %s %s: %w", kind, name, err)
	}
	body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
	err = c.Do(ctx, http.MethodDelete, path, ContentJSON, body, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}
