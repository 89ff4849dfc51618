package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxDocumentSize bounds the whole input of Parse.
const MaxDocumentSize = 16 << 20

// ErrInvalid is wrapped by every error about a malformed or inconsistent
// cluster description.
var ErrInvalid = errors.New("invalid cluster")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Parse reads a stream of YAML documents separated by "---" lines, one
// resource each, and returns the validated cluster.
func Parse(r io.Reader) (*Cluster, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("spec: read: %w", err)
	}
	if len(data) > MaxDocumentSize {
		return nil, invalid("input is larger than %d bytes", MaxDocumentSize)
	}
	c := &Cluster{}
	for i, doc := range splitDocuments(data) {
		if err := c.add(doc); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// splitDocuments cuts a YAML stream at lines that are exactly "---" (with
// optional trailing spaces or comment) and drops documents with no content.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxDocumentSize+1)
	for sc.Scan() {
		line := sc.Text()
		if isSeparator(line) {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func isSeparator(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := strings.TrimSpace(line[3:])
	return rest == "" || strings.HasPrefix(rest, "#")
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

type header struct {
	Kind string `json:"kind"`
}

func (c *Cluster) add(doc []byte) error {
	var h header
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return invalid("not a YAML mapping: %v", err)
	}
	var dst any
	switch h.Kind {
	case KindNetwork:
		n := &Network{}
		c.Networks, dst = append(c.Networks, n), n
	case KindNetworkNamespace:
		n := &NetworkNamespace{}
		c.Namespaces, dst = append(c.Namespaces, n), n
	case KindNode:
		n := &Node{}
		c.Nodes, dst = append(c.Nodes, n), n
	case KindImage:
		n := &Image{}
		c.Images, dst = append(c.Images, n), n
	case KindDeviceClass:
		n := &DeviceClass{}
		c.DeviceClasses, dst = append(c.DeviceClasses, n), n
	case KindNspawnNode:
		n := &NspawnNode{}
		c.NspawnNodes, dst = append(c.NspawnNodes, n), n
	case KindRootfs:
		n := &Rootfs{}
		c.Rootfses, dst = append(c.Rootfses, n), n
	case "":
		return invalid("missing kind")
	default:
		return invalid("unknown kind %q (want one of %s)", h.Kind, strings.Join(kinds, ", "))
	}
	if err := yaml.UnmarshalStrict(doc, dst); err != nil {
		return invalid("%s: %v", h.Kind, err)
	}
	return nil
}

var kinds = []string{KindNetwork, KindNetworkNamespace, KindNode, KindImage, KindDeviceClass, KindNspawnNode, KindRootfs}

// Marshal writes the cluster as a YAML stream that Parse reads back.
func (c *Cluster) Marshal() ([]byte, error) {
	var out bytes.Buffer
	emit := func(kind string, v any) error {
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("spec: marshal %s: %w", kind, err)
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
		return nil
	}
	var err error
	for _, r := range c.Rootfses {
		r.Kind = KindRootfs
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.Images {
		r.Kind = KindImage
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.DeviceClasses {
		r.Kind = KindDeviceClass
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.Networks {
		r.Kind = KindNetwork
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.Namespaces {
		r.Kind = KindNetworkNamespace
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.NspawnNodes {
		r.Kind = KindNspawnNode
		err = errors.Join(err, emit(r.Kind, r))
	}
	for _, r := range c.Nodes {
		r.Kind = KindNode
		err = errors.Join(err, emit(r.Kind, r))
	}
	return out.Bytes(), err
}
