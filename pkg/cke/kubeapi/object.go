package kubeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"sigs.k8s.io/yaml"
)

// Object is a Kubernetes object of any kind as JSON decodes it, numbers
// kept as json.Number.
type Object map[string]any

// APIVersion is the object's apiVersion.
func (o Object) APIVersion() string { return o.str("apiVersion") }

// Kind is the object's kind.
func (o Object) Kind() string { return o.str("kind") }

// Name is the object's metadata.name.
func (o Object) Name() string { return o.str("metadata", "name") }

// Namespace is the object's metadata.namespace; empty for a cluster-scoped
// object.
func (o Object) Namespace() string { return o.str("metadata", "namespace") }

// ResourceVersion is the object's metadata.resourceVersion.
func (o Object) ResourceVersion() string { return o.str("metadata", "resourceVersion") }

// Field is the value at a path of keys (e.g. "data", "key"), and whether
// there is one.
func (o Object) Field(path ...string) (any, bool) {
	var v any = map[string]any(o)
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func (o Object) str(path ...string) string {
	v, _ := o.Field(path...)
	s, _ := v.(string)
	return s
}

func decodeObject(data []byte) (Object, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var o Object
	if err := d.Decode(&o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("not an object")
	}
	return o, nil
}

// docSeparator is a YAML document separator: "---" at the start of a line
// (a "---" inside a block scalar is indented).
var docSeparator = regexp.MustCompile(`(?m)^---(?:[ \t].*)?$`)

// ParseManifest reads one object from YAML or JSON and checks that it has
// an apiVersion, a kind and a metadata.name.
func ParseManifest(manifest []byte) (Object, error) {
	docs := 0
	for _, doc := range docSeparator.Split(string(manifest), -1) {
		if !blankYAML(doc) {
			docs++
		}
	}
	if docs > 1 {
		return nil, errors.New("kubeapi: the manifest holds more than one object")
	}
	data, err := yaml.YAMLToJSON(manifest)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: manifest: %w", err)
	}
	obj, err := decodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: manifest: %w", err)
	}
	id := func() string {
		if name := obj.Name(); name != "" {
			return fmt.Sprintf(" of %s %q", obj.Kind(), name)
		}
		return ""
	}
	switch {
	case obj.APIVersion() == "":
		return nil, fmt.Errorf("kubeapi: manifest%s has no apiVersion", id())
	case obj.Kind() == "":
		return nil, fmt.Errorf("kubeapi: manifest of %s has no kind", obj.APIVersion())
	case obj.Name() == "":
		return nil, fmt.Errorf("kubeapi: manifest of %s %s has no metadata.name", obj.APIVersion(), obj.Kind())
	}
	if _, ok := obj.Field("metadata", "namespace"); ok && obj.Namespace() == "" {
		return nil, fmt.Errorf("kubeapi: manifest%s has an empty metadata.namespace", id())
	}
	return obj, nil
}

// blankYAML reports whether doc holds only blank lines and comments.
func blankYAML(doc string) bool {
	for line := range bytes.Lines([]byte(doc)) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}
