package ipam_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/podnet"
	"github.com/openneco/neco/pkg/podnet/ipam"
)

// The tests share one API server: each has its own nodes, pools and
// subnets.
func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m))
}

var (
	crdsOnce sync.Once
	crdsErr  error
	// next is the second octet of the next test subnet, 10.<next>.0.0/16.
	next atomic.Int32
	// unique is a suffix no other run of the tests used on this API
	// server.
	unique = time.Now().UnixNano() % 1_000_000
)

// client is an administrator's client of the shared API server, with the
// CRDs installed.
func client(t *testing.T) *kubeapi.Client {
	t.Helper()
	c := kubetest.Shared(t).Client(t)
	crdsOnce.Do(func() { crdsErr = podnet.InstallCRDs(t.Context(), c) })
	if crdsErr != nil {
		t.Fatal(crdsErr)
	}
	return c
}

// subnet16 is a /16 of 10.0.0.0/8 no other test uses: "10.n.".
func subnet16(t *testing.T) string {
	t.Helper()
	n := next.Add(1)
	if n > 255 {
		t.Fatal("out of test subnets")
	}
	return fmt.Sprintf("10.%d.", n)
}

var names atomic.Int32

// name is a name no other test uses.
func name(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, unique, names.Add(1))
}

// createNode creates a Node and returns its name.
func createNode(t *testing.T, c *kubeapi.Client) string {
	t.Helper()
	n := name("node")
	body := fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`, n)
	if err := c.Do(t.Context(), http.MethodPost, "/api/v1/nodes", kubeapi.ContentJSON, body, nil); err != nil {
		t.Fatal(err)
	}
	return n
}

func nodeUID(t *testing.T, c *kubeapi.Client, node string) string {
	t.Helper()
	var n struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := c.Get(t.Context(), "/api/v1/nodes/"+node, &n); err != nil {
		t.Fatal(err)
	}
	return n.Metadata.UID
}

// createPool creates a pool and returns its name.
func createPool(t *testing.T, c *kubeapi.Client, bits int, subnets ...string) string {
	t.Helper()
	p := podnet.AddressPool{
		APIVersion: podnet.APIVersion,
		Kind:       podnet.KindAddressPool,
		Metadata:   podnet.ObjectMeta{Name: name("pool")},
		Spec:       podnet.AddressPoolSpec{Subnets: subnets, BlockSizeBits: bits},
	}
	body, _ := json.Marshal(p)
	if err := c.Do(t.Context(), http.MethodPost, podnet.PoolsPath, kubeapi.ContentJSON, body, nil); err != nil {
		t.Fatal(err)
	}
	return p.Metadata.Name
}

// blocks lists the blocks of pool in the API.
func blocks(t *testing.T, c *kubeapi.Client, pool string) []podnet.AddressBlock {
	t.Helper()
	var list struct {
		Items []podnet.AddressBlock `json:"items"`
	}
	if err := c.Get(t.Context(), podnet.BlocksPath+"?labelSelector="+podnet.PoolLabel+"%3D"+pool, &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func blockNames(bs []podnet.AddressBlock) []string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Metadata.Name+" "+b.Spec.CIDR+" "+b.Spec.Node)
	}
	slices.Sort(s)
	return s
}

// routes records the calls of SyncRoutes, with the blocks of the node that
// existed in the API at each.
type routes struct {
	c    *kubeapi.Client
	node string
	// fail, when set, is SyncRoutes's error.
	fail atomic.Pointer[error]

	mu    sync.Mutex
	calls []routesCall
}

type routesCall struct {
	prefixes []netip.Prefix
	// inAPI are the CIDRs of the node's blocks in the API during the call.
	inAPI []string
}

func newRoutes(c *kubeapi.Client, node string) *routes {
	return &routes{c: c, node: node}
}

func (r *routes) sync(prefixes []netip.Prefix) error {
	var list struct {
		Items []podnet.AddressBlock `json:"items"`
	}
	// A background context: the allocator's is not at hand.
	if err := r.c.Get(context.Background(), podnet.BlocksPath+"?labelSelector="+podnet.NodeLabel+"%3D"+r.node, &list); err != nil {
		return err
	}
	var inAPI []string
	for _, b := range list.Items {
		inAPI = append(inAPI, b.Spec.CIDR)
	}
	r.mu.Lock()
	r.calls = append(r.calls, routesCall{prefixes: slices.Clone(prefixes), inAPI: inAPI})
	r.mu.Unlock()
	if err := r.fail.Load(); err != nil {
		return *err
	}
	return nil
}

func (r *routes) all() []routesCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *routes) last() []netip.Prefix {
	calls := r.all()
	if len(calls) == 0 {
		return nil
	}
	return calls[len(calls)-1].prefixes
}

func newAllocator(c *kubeapi.Client, node string, r *routes) *ipam.Allocator {
	return ipam.New(ipam.Config{Client: c, Node: node, SyncRoutes: r.sync})
}
