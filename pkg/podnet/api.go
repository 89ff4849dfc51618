package podnet

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
)

// The pod network's API: two cluster-scoped custom resources of group
// Group, version Version.
const (
	Group      = "podnet.openneco.io"
	Version    = "v1"
	APIVersion = Group + "/" + Version

	KindAddressPool  = "AddressPool"
	KindAddressBlock = "AddressBlock"

	// PoolsPath and BlocksPath are the resources' collections in the API.
	PoolsPath  = "/apis/" + APIVersion + "/addresspools"
	BlocksPath = "/apis/" + APIVersion + "/addressblocks"
)

// Labels of an AddressBlock, and the annotation of a namespace.
const (
	// PoolLabel is the label of an AddressBlock naming its pool.
	PoolLabel = Group + "/pool"
	// NodeLabel is the label of an AddressBlock naming the node that owns
	// it.
	NodeLabel = Group + "/node"
	// PoolAnnotation on a namespace names the pool its pods' addresses come
	// from; without it they come from DefaultPool.
	PoolAnnotation = Group + "/pool"
	// DefaultPool is the pool of namespaces without PoolAnnotation.
	DefaultPool = "default"
)

// Limits of an AddressPool.
const (
	// DefaultBlockSizeBits is the block size the API sets when a pool's
	// manifest leaves blockSizeBits out: 2^5 = 32 addresses, a /27.
	DefaultBlockSizeBits = 5
	// MaxBlockSizeBits is the largest block size: 2^16 addresses, a /16.
	MaxBlockSizeBits = 16
	// MaxSubnets is the most subnets a pool may have.
	MaxSubnets = 64
	// MaxPoolName is the longest pool name: it is a label value of the
	// pool's blocks.
	MaxPoolName = 63
)

// ObjectMeta is what the pod network reads and writes of an object's
// metadata.
type ObjectMeta struct {
	Name              string            `json:"name"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp,omitzero"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference names an object's owner: the garbage collector deletes
// the object when its owners are gone.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
}

// AddressPool is a range of pod addresses, handed to nodes in blocks of
// 2^Spec.BlockSizeBits addresses.
type AddressPool struct {
	APIVersion string          `json:"apiVersion,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Metadata   ObjectMeta      `json:"metadata"`
	Spec       AddressPoolSpec `json:"spec"`
}

// AddressPoolSpec is an AddressPool's spec.
type AddressPoolSpec struct {
	// Subnets are IPv4 CIDRs in canonical form, none overlapping another.
	// They may only be appended to: block index n counts blocks over the
	// subnets in this order, so an entry removed or changed would move
	// blocks that nodes own.
	Subnets []string `json:"subnets"`
	// BlockSizeBits is the size of a block, 2^BlockSizeBits addresses
	// (0..MaxBlockSizeBits); it never changes. The API defaults it to
	// DefaultBlockSizeBits when a manifest leaves it out; in Go, 0 means
	// blocks of one address.
	BlockSizeBits int `json:"blockSizeBits"`
}

// AddressBlock is a block of a pool that a node owns. It is named
// BlockName(pool, index); the API's refusal to create a second object of
// one name is what keeps two nodes from owning one block. Its spec never
// changes. Its owner is the Node, so the garbage collector deletes the
// blocks of a deleted Node.
type AddressBlock struct {
	APIVersion string           `json:"apiVersion,omitempty"`
	Kind       string           `json:"kind,omitempty"`
	Metadata   ObjectMeta       `json:"metadata"`
	Spec       AddressBlockSpec `json:"spec"`
}

// AddressBlockSpec is an AddressBlock's spec.
type AddressBlockSpec struct {
	Pool  string `json:"pool"`
	Node  string `json:"node"`
	Index int    `json:"index"`
	// CIDR is the block's addresses: the pool's block of that index.
	CIDR string `json:"cidr"`
}

// BlockName is the name of the block of pool at index.
func BlockName(pool string, index int) string {
	return pool + "-" + strconv.Itoa(index)
}

// ValidatePool checks p as the API's validation does (see CRDs), for a
// reader of the API to check what it reads: a name of at most MaxPoolName
// characters; 1 to MaxSubnets subnets, each an IPv4 CIDR in canonical form,
// none overlapping another; BlockSizeBits in 0..MaxBlockSizeBits; and a
// block of 2^BlockSizeBits addresses fitting in every subnet.
func ValidatePool(p AddressPool) error {
	var problems []string
	name := p.Metadata.Name
	switch {
	case name == "":
		problems = append(problems, "no name")
	case len(name) > MaxPoolName:
		problems = append(problems, fmt.Sprintf("the name is longer than %d characters (it is a label value of the pool's blocks)", MaxPoolName))
	}
	bits := p.Spec.BlockSizeBits
	if bits < 0 || bits > MaxBlockSizeBits {
		problems = append(problems, fmt.Sprintf("blockSizeBits %d is not in 0..%d", bits, MaxBlockSizeBits))
	}
	switch n := len(p.Spec.Subnets); {
	case n == 0:
		problems = append(problems, "no subnet")
	case n > MaxSubnets:
		problems = append(problems, fmt.Sprintf("%d subnets, more than %d", n, MaxSubnets))
	}
	var prefixes []netip.Prefix
	for _, s := range p.Spec.Subnets {
		prefix, err := ParseSubnet(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if bits >= 0 && bits <= MaxBlockSizeBits && prefix.Bits() > 32-bits {
			problems = append(problems, fmt.Sprintf("a block of %d addresses (blockSizeBits %d) must fit in every subnet: %s is too small", 1<<bits, bits, s))
		}
		for _, q := range prefixes {
			if q.Overlaps(prefix) {
				problems = append(problems, fmt.Sprintf("subnets %s and %s overlap", q, prefix))
			}
		}
		prefixes = append(prefixes, prefix)
	}
	if len(problems) > 0 {
		return fmt.Errorf("pool %s: %s", name, strings.Join(problems, "; "))
	}
	return nil
}

// ParseSubnet parses a pool's subnet: an IPv4 CIDR in canonical form
// (10.64.0.0/14: no host bits set, no leading zeros).
func ParseSubnet(s string) (netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !prefix.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("subnet %q is not an IPv4 CIDR", s)
	case prefix.Masked() != prefix || prefix.String() != s:
		return netip.Prefix{}, fmt.Errorf("subnet %q has host bits set or is not in canonical form: %s", s, prefix.Masked())
	}
	return prefix, nil
}

// Overlaps finds the pools that overlap another pool: of two overlapping
// pools, the later one (by creation time, then name) is in conflict and
// must never be allocated from, for the earlier one may have handed out
// the addresses they share. The answer maps the name of each pool in
// conflict to an error naming the earlier pools it overlaps and the
// subnets they share. Subnets that do not parse are left out: ValidatePool
// reports them.
//
// A pool in conflict stays so even when the earlier pool is deleted, as
// long as it overlaps any earlier pool, in conflict or not: which pool
// wins never changes while both exist.
func Overlaps(pools []AddressPool) map[string]error {
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b AddressPool) int {
		return cmp.Or(a.Metadata.CreationTimestamp.Compare(b.Metadata.CreationTimestamp), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	conflicts := map[string]error{}
	for i, p := range sorted {
		var shared []string
		for _, earlier := range sorted[:i] {
			for _, s := range p.Spec.Subnets {
				ps, err := ParseSubnet(s)
				if err != nil {
					continue
				}
				for _, e := range earlier.Spec.Subnets {
					es, err := ParseSubnet(e)
					if err == nil && ps.Overlaps(es) {
						shared = append(shared, fmt.Sprintf("%s of pool %s overlaps %s of pool %s", s, p.Metadata.Name, e, earlier.Metadata.Name))
					}
				}
			}
		}
		if len(shared) > 0 {
			conflicts[p.Metadata.Name] = fmt.Errorf("pool %s overlaps an earlier pool: %s", p.Metadata.Name, strings.Join(shared, "; "))
		}
	}
	return conflicts
}

// CRDs are the CustomResourceDefinitions of AddressPool and AddressBlock,
// YAML manifests for kubeapi.Client.Apply.
//
// Their schemas validate with CEL (Kubernetes 1.31 or later, for the IP
// and CIDR functions), so that the API refuses a bad pool with a message
// that says why: every subnet an IPv4 CIDR in canonical form, at least one
// and at most MaxSubnets, none overlapping another of the pool, each with
// room for a block; blockSizeBits in 0..MaxBlockSizeBits (default
// DefaultBlockSizeBits) and immutable; subnets append-only. A block's spec
// is immutable and its name is BlockName(spec.pool, spec.index).
//
// Overlaps between pools cannot be checked by one object's validation:
// readers check them with Overlaps.
func CRDs() [][]byte {
	return [][]byte{[]byte(poolCRD), []byte(blockCRD)}
}

// CRDNames are the names of the CustomResourceDefinitions of CRDs.
var CRDNames = []string{"addresspools." + Group, "addressblocks." + Group}

// InstallCRDs applies CRDs (server-side apply, field manager podnet) and
// waits until the API serves them: until they are Established and their
// resources can be listed (a moment later, the API answers 429 "storage is
// (re)initializing").
func InstallCRDs(ctx context.Context, c *kubeapi.Client) error {
	for _, crd := range CRDs() {
		if _, err := c.Apply(ctx, crd, "podnet", true); err != nil {
			return fmt.Errorf("podnet: install CRDs: %w", err)
		}
	}
	for i, name := range CRDNames {
		if err := waitServed(ctx, c, name, []string{PoolsPath, BlocksPath}[i]); err != nil {
			return fmt.Errorf("podnet: install CRDs: %w", err)
		}
	}
	return nil
}

// waitServed waits until the CustomResourceDefinition name is Established
// and its resource at path can be listed.
func waitServed(ctx context.Context, c *kubeapi.Client, name, path string) error {
	var crd struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	}
	for {
		err := c.Get(ctx, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+url.PathEscape(name), &crd)
		if err != nil {
			return err
		}
		err = fmt.Errorf("%s is not established", name)
		for _, cond := range crd.Status.Conditions {
			if cond.Type == "Established" && cond.Status == "True" {
				err = c.Get(ctx, path+"?limit=1", nil)
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not served: %w (%w)", name, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ipv4CIDR is the CEL test of a string being an IPv4 CIDR (of any form).
const ipv4CIDR = `isCIDR(%[1]s) && cidr(%[1]s).ip().family() == 4`

// blockSizes is a CEL list of the sizes of blocks, as strings, by
// blockSizeBits: string(int) in a message would make the API estimate its
// length as unbounded, and refuse the rule as too costly.
var blockSizes = func() string {
	var sizes []string
	for bits := range MaxBlockSizeBits + 1 {
		sizes = append(sizes, fmt.Sprintf("'%d'", 1<<bits))
	}
	return "[" + strings.Join(sizes, ", ") + "]"
}()

// overlap is the CEL test of subnets a and b being two that overlap.
var overlap = "a != b && (" + fmt.Sprintf(ipv4CIDR, "a") + ") && (" + fmt.Sprintf(ipv4CIDR, "b") +
	") && (cidr(a).containsCIDR(cidr(b)) || cidr(b).containsCIDR(cidr(a)))"

// cidrRules are the CEL rules of a string field holding an IPv4 CIDR in
// canonical form, indented for an items or property schema.
const cidrRules = `
                x-kubernetes-validations:
                - rule: isCIDR(self) && cidr(self).ip().family() == 4
                  messageExpression: "self + ' is not an IPv4 CIDR (e.g. 10.64.0.0/14)'"
                - rule: "!isCIDR(self) || string(cidr(self).masked()) == self"
                  messageExpression: "self + ' has host bits set or is not in canonical form: write the first address of the subnet, without leading zeros'"`

var poolCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: addresspools.` + Group + `
spec:
  group: ` + Group + `
  scope: Cluster
  names:
    kind: AddressPool
    listKind: AddressPoolList
    plural: addresspools
    singular: addresspool
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - name: Subnets
      type: string
      jsonPath: .spec.subnets
    - name: Bits
      type: integer
      jsonPath: .spec.blockSizeBits
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        description: >-
          A range of pod addresses, handed to nodes in blocks of 2^blockSizeBits
          addresses. The pool "default" serves namespaces without the annotation
          ` + PoolAnnotation + `.
        type: object
        required: [spec]
        x-kubernetes-validations:
        - rule: self.metadata.name.size() <= ` + strconv.Itoa(MaxPoolName) + `
          message: a pool name has at most ` + strconv.Itoa(MaxPoolName) + ` characters (it is a label value of its blocks)
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [subnets]
            x-kubernetes-validations:
            - rule: "self.subnets.all(s, !(` + fmt.Sprintf(ipv4CIDR, "s") + `) || cidr(s).prefixLength() <= 32 - self.blockSizeBits)"
              messageExpression: >-
                'a block of ' + ` + blockSizes + `[self.blockSizeBits] + ' addresses (blockSizeBits) must fit in every subnet: '
                + self.subnets.filter(s, (` + fmt.Sprintf(ipv4CIDR, "s") + `) && cidr(s).prefixLength() > 32 - self.blockSizeBits)[0] + ' is too small'
              reason: FieldValueInvalid
              fieldPath: .subnets
            properties:
              subnets:
                description: >-
                  IPv4 CIDRs in canonical form, none overlapping another. Append-only:
                  blocks are counted over the subnets in this order.
                type: array
                minItems: 1
                maxItems: ` + strconv.Itoa(MaxSubnets) + `
                x-kubernetes-list-type: set
                items:
                  type: string
                  maxLength: 43` + indent(cidrRules, 2) + `
                x-kubernetes-validations:
                - rule: "self.all(a, self.all(b, a == b || !(` + fmt.Sprintf(ipv4CIDR, "a") + `) || !(` + fmt.Sprintf(ipv4CIDR, "b") + `) || !cidr(a).containsCIDR(cidr(b))))"
                  messageExpression: >-
                    'subnets overlap: ' + self.filter(a, self.exists(b, ` + overlap + `))[0] + ' and '
                    + self.filter(a, self.exists(b, ` + overlap + `))[1]
                - rule: oldSelf.all(s, self.indexOf(s) == oldSelf.indexOf(s))
                  message: subnets are append-only (blocks are counted over them in order); existing entries may not be removed, changed or reordered
              blockSizeBits:
                description: A block has 2^blockSizeBits addresses. Immutable.
                type: integer
                minimum: 0
                maximum: ` + strconv.Itoa(MaxBlockSizeBits) + `
                default: ` + strconv.Itoa(DefaultBlockSizeBits) + `
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: blockSizeBits is immutable
`

var blockCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: addressblocks.` + Group + `
spec:
  group: ` + Group + `
  scope: Cluster
  names:
    kind: AddressBlock
    listKind: AddressBlockList
    plural: addressblocks
    singular: addressblock
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - name: Node
      type: string
      jsonPath: .spec.node
    - name: CIDR
      type: string
      jsonPath: .spec.cidr
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        description: >-
          A block of an AddressPool that a node owns, named <pool>-<index>. Nodes
          create and delete their blocks themselves; the API's refusal to create a
          second object of one name keeps two nodes from owning one block.
        type: object
        required: [spec]
        x-kubernetes-validations:
        # Not name == pool + '-' + string(index): the API estimates the
        # length of string(int) as unbounded, and the rule as too costly.
        - rule: >-
            self.metadata.name.startsWith(self.spec.pool + '-')
            && self.metadata.name.substring(self.spec.pool.size() + 1).matches('^(0|[1-9][0-9]{0,9})$')
            && int(self.metadata.name.substring(self.spec.pool.size() + 1)) == self.spec.index
          message: an AddressBlock is named <spec.pool>-<spec.index>
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [pool, node, index, cidr]
            x-kubernetes-validations:
            - rule: self == oldSelf
              message: the spec of an AddressBlock is immutable
            properties:
              pool:
                type: string
                minLength: 1
                maxLength: ` + strconv.Itoa(MaxPoolName) + `
              node:
                type: string
                minLength: 1
                maxLength: 253
              index:
                type: integer
                minimum: 0
                maximum: 2147483647
              cidr:
                type: string
                maxLength: 43` + cidrRules + `
`

// indent indents every line of s but the first (empty) one by n spaces.
func indent(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
