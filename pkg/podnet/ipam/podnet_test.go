package ipam_test

// The tests of package podnet, whose API the allocator reads, are here:
// they share the allocator tests' API server, and package podnet's
// directory is other people's too.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/cke/kubeapi/kubetest"
	"github.com/openneco/neco/pkg/podnet"
)

func newPool(name string, bits int, subnets ...string) podnet.AddressPool {
	return podnet.AddressPool{Metadata: podnet.ObjectMeta{Name: name}, Spec: podnet.AddressPoolSpec{Subnets: subnets, BlockSizeBits: bits}}
}

func TestValidatePool(t *testing.T) {
	tests := []struct {
		name string
		pool podnet.AddressPool
		// want are parts of the error; none: valid.
		want []string
	}{
		{name: "default", pool: newPool("default", 5, "10.64.0.0/14")},
		{name: "several subnets", pool: newPool("p", 5, "10.64.0.0/14", "10.68.0.0/27", "172.16.0.0/12")},
		{name: "/32 blocks", pool: newPool("internet-egress", 0, "172.19.0.0/28", "172.19.0.16/32")},
		{name: "/16 blocks", pool: newPool("p", 16, "10.0.0.0/16")},
		{name: "no name", pool: newPool("", 5, "10.0.0.0/24"), want: []string{"no name"}},
		{name: "long name", pool: newPool(strings.Repeat("a", 64), 5, "10.0.0.0/24"), want: []string{"longer than 63"}},
		{name: "no subnet", pool: newPool("p", 5), want: []string{"no subnet"}},
		{name: "too many subnets", pool: newPool("p", 0, manySubnets(65)...), want: []string{"65 subnets"}},
		{name: "not a CIDR", pool: newPool("p", 5, "10.0.0.0"), want: []string{`"10.0.0.0" is not an IPv4 CIDR`}},
		{name: "IPv6", pool: newPool("p", 5, "fd00::/64"), want: []string{"not an IPv4 CIDR"}},
		{name: "host bits", pool: newPool("p", 5, "10.0.0.1/24"), want: []string{"host bits set", "10.0.0.0/24"}},
		{name: "leading zeros", pool: newPool("p", 5, "10.0.0.0/024"), want: []string{"not an IPv4 CIDR"}},
		{name: "negative bits", pool: newPool("p", -1, "10.0.0.0/24"), want: []string{"blockSizeBits -1 is not in 0..16"}},
		{name: "bits too large", pool: newPool("p", 17, "10.0.0.0/8"), want: []string{"blockSizeBits 17"}},
		{name: "block does not fit", pool: newPool("p", 5, "10.0.0.0/24", "10.0.1.0/28"), want: []string{"a block of 32 addresses (blockSizeBits 5)", "10.0.1.0/28 is too small"}},
		{name: "overlapping subnets", pool: newPool("p", 5, "10.0.0.0/16", "10.1.0.0/16", "10.0.4.0/24"), want: []string{"subnets 10.0.0.0/16 and 10.0.4.0/24 overlap"}},
		{name: "equal subnets", pool: newPool("p", 5, "10.0.0.0/24", "10.0.0.0/24"), want: []string{"overlap"}},
		{name: "several problems", pool: newPool("p", 5, "x", "10.0.0.0/30"), want: []string{`"x"`, "10.0.0.0/30 is too small"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := podnet.ValidatePool(tt.pool)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid pool refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func manySubnets(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("172.16.%d.0/24", i))
	}
	return s
}

func TestOverlaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(p podnet.AddressPool, d time.Duration) podnet.AddressPool {
		p.Metadata.CreationTimestamp = t0.Add(d)
		return p
	}
	tests := []struct {
		name  string
		pools []podnet.AddressPool
		// want maps each pool in conflict to parts of its error.
		want map[string][]string
	}{
		{
			name:  "apart",
			pools: []podnet.AddressPool{at(newPool("a", 5, "10.0.0.0/16"), 0), at(newPool("b", 5, "10.1.0.0/16"), time.Second)},
		},
		{
			name:  "later one in conflict",
			pools: []podnet.AddressPool{at(newPool("z", 0, "10.1.0.0/16", "10.0.0.0/24"), time.Second), at(newPool("a", 5, "10.0.0.0/16"), 0)},
			want:  map[string][]string{"z": {"pool z overlaps", "10.0.0.0/24 of pool z overlaps 10.0.0.0/16 of pool a"}},
		},
		{
			name:  "same time: by name",
			pools: []podnet.AddressPool{at(newPool("b", 5, "10.0.0.0/24"), 0), at(newPool("a", 5, "10.0.0.0/16"), 0)},
			want:  map[string][]string{"b": {"10.0.0.0/24 of pool b overlaps 10.0.0.0/16 of pool a"}},
		},
		{
			name: "chain: each overlapping an earlier one",
			pools: []podnet.AddressPool{
				at(newPool("a", 5, "10.0.0.0/24"), 0),
				at(newPool("b", 5, "10.0.0.0/23"), time.Second),
				at(newPool("c", 5, "10.0.1.0/24"), 2*time.Second),
				at(newPool("d", 5, "10.9.0.0/24"), 3*time.Second),
			},
			want: map[string][]string{
				"b": {"10.0.0.0/23 of pool b overlaps 10.0.0.0/24 of pool a"},
				"c": {"10.0.1.0/24 of pool c overlaps 10.0.0.0/23 of pool b"},
			},
		},
		{
			name:  "bad subnets left out",
			pools: []podnet.AddressPool{at(newPool("a", 5, "x"), 0), at(newPool("b", 5, "x"), time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podnet.Overlaps(tt.pools)
			if len(got) != len(tt.want) {
				t.Errorf("conflicts %v, want %d", got, len(tt.want))
			}
			for name, parts := range tt.want {
				err := got[name]
				if err == nil {
					t.Errorf("pool %s not in conflict", name)
					continue
				}
				for _, p := range parts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("pool %s: error %q does not say %q", name, err, p)
					}
				}
			}
		})
	}
}

func TestBlockName(t *testing.T) {
	if got := podnet.BlockName("default", 12); got != "default-12" {
		t.Errorf("BlockName = %q", got)
	}
}

// The API refuses bad pools and blocks with a message that says why.
func TestCRDValidation(t *testing.T) {
	c := kubetest.Shared(t).Client(t)
	ctx := t.Context()
	// The CRDs' pools take no subnet of 10.0.0.0/8, which the allocator
	// tests' pools have.
	if err := podnet.InstallCRDs(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Again: nothing changes.
	if err := podnet.InstallCRDs(ctx, c); err != nil {
		t.Fatal(err)
	}

	create := func(path, manifest string) error {
		return c.Do(ctx, http.MethodPost, path, kubeapi.ContentJSON, yamlJSON(t, manifest), nil)
	}

	// A valid pool gets the default block size. (Names are unique: the
	// test may run again on the same API server.)
	valid := fmt.Sprintf("valid%d", time.Now().UnixNano()%1_000_000_000)
	if err := create(podnet.PoolsPath, `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressPool","metadata":{"name":"`+valid+`"},"spec":{"subnets":["100.64.0.0/14"]}}`); err != nil {
		t.Fatal(err)
	}
	var p podnet.AddressPool
	if err := c.Get(ctx, podnet.PoolsPath+"/"+valid, &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.BlockSizeBits != podnet.DefaultBlockSizeBits || p.Metadata.CreationTimestamp.IsZero() || p.Metadata.UID == "" {
		t.Errorf("read back %+v", p)
	}
	if err := podnet.ValidatePool(p); err != nil {
		t.Errorf("ValidatePool of what the API accepted: %v", err)
	}

	badPools := []struct {
		name, spec string
		want       []string
	}{
		{"not a CIDR", `{"subnets":["10.64.0.0"]}`, []string{"10.64.0.0 is not an IPv4 CIDR"}},
		{"IPv6", `{"subnets":["fd00::/64"]}`, []string{"fd00::/64 is not an IPv4 CIDR"}},
		{"host bits", `{"subnets":["10.64.0.1/14"]}`, []string{"10.64.0.1/14 has host bits set", "write the first address of the subnet"}},
		{"no subnet", `{"subnets":[]}`, []string{"spec.subnets", "at least 1"}},
		{"no subnets field", `{"blockSizeBits":5}`, []string{"spec.subnets", "Required"}},
		{"block does not fit", `{"subnets":["10.0.0.0/24","10.0.1.0/28"],"blockSizeBits":5}`, []string{"a block of 32 addresses (blockSizeBits) must fit in every subnet: 10.0.1.0/28 is too small"}},
		{"block does not fit, default bits", `{"subnets":["10.0.1.0/30"]}`, []string{"a block of 32 addresses", "10.0.1.0/30 is too small"}},
		{"bits too large", `{"subnets":["10.0.0.0/8"],"blockSizeBits":17}`, []string{"blockSizeBits", "less than or equal to 16"}},
		{"bits negative", `{"subnets":["10.0.0.0/8"],"blockSizeBits":-1}`, []string{"blockSizeBits", "greater than or equal to 0"}},
		{"overlap", `{"subnets":["10.0.0.0/16","10.1.0.0/16","10.0.8.0/24"]}`, []string{"subnets overlap: 10.0.0.0/16 and 10.0.8.0/24"}},
		{"duplicate", `{"subnets":["10.0.0.0/16","10.0.0.0/16"]}`, []string{"Duplicate value"}},
	}
	for _, tt := range badPools {
		t.Run("pool/"+tt.name, func(t *testing.T) {
			err := create(podnet.PoolsPath, `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressPool","metadata":{"name":"bad"},"spec":`+tt.spec+`}`)
			wantInvalid(t, err, tt.want...)
		})
	}
	t.Run("pool/long name", func(t *testing.T) {
		err := create(podnet.PoolsPath, `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressPool","metadata":{"name":"`+strings.Repeat("a", 64)+`"},"spec":{"subnets":["10.0.0.0/24"]}}`)
		wantInvalid(t, err, "at most 63 characters")
	})
	t.Run("pool/many subnets", func(t *testing.T) {
		subnets, _ := json.Marshal(manySubnets(podnet.MaxSubnets))
		name := valid + "-many"
		if err := create(podnet.PoolsPath, `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressPool","metadata":{"name":"`+name+`"},"spec":{"subnets":`+string(subnets)+`}}`); err != nil {
			t.Fatalf("%d subnets: %v", podnet.MaxSubnets, err)
		}
		subnets, _ = json.Marshal(manySubnets(podnet.MaxSubnets + 1))
		err := create(podnet.PoolsPath, `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressPool","metadata":{"name":"bad"},"spec":{"subnets":`+string(subnets)+`}}`)
		wantInvalid(t, err, "must have at most 64 items")
	})

	patch := func(name, patch string) error {
		return c.Do(ctx, http.MethodPatch, podnet.PoolsPath+"/"+name, kubeapi.ContentMergePatch, []byte(patch), nil)
	}
	t.Run("pool/updates", func(t *testing.T) {
		wantInvalid(t, patch(valid, `{"spec":{"blockSizeBits":6}}`), "blockSizeBits is immutable")
		wantInvalid(t, patch(valid, `{"spec":{"subnets":["100.68.0.0/14"]}}`), "subnets are append-only")
		wantInvalid(t, patch(valid, `{"spec":{"subnets":["100.68.0.0/14","100.64.0.0/14"]}}`), "subnets are append-only")
		wantInvalid(t, patch(valid, `{"spec":{"subnets":["100.64.0.0/14","100.66.0.0/16"]}}`), "subnets overlap")
		if err := patch(valid, `{"spec":{"subnets":["100.64.0.0/14","100.68.0.0/14"]}}`); err != nil {
			t.Errorf("appending a subnet: %v", err)
		}
		// The same bits again is no change.
		if err := patch(valid, `{"spec":{"blockSizeBits":5}}`); err != nil {
			t.Errorf("setting blockSizeBits to its value: %v", err)
		}
	})

	block := func(name, spec string) string {
		return `{"apiVersion":"podnet.openneco.io/v1","kind":"AddressBlock","metadata":{"name":"` + name + `"},"spec":` + spec + `}`
	}
	if err := create(podnet.BlocksPath, block(valid+"-3", `{"pool":"`+valid+`","node":"n1","index":3,"cidr":"100.64.0.96/27"}`)); err != nil {
		t.Fatal(err)
	}
	t.Run("block/bad", func(t *testing.T) {
		wantInvalid(t, create(podnet.BlocksPath, block(valid+"-4", `{"pool":"`+valid+`","node":"n1","index":5,"cidr":"100.64.0.160/27"}`)), "an AddressBlock is named <spec.pool>-<spec.index>")
		wantInvalid(t, create(podnet.BlocksPath, block(valid+"-5", `{"pool":"`+valid+`","node":"n1","index":5,"cidr":"100.64.0.161/27"}`)), "host bits set")
		wantInvalid(t, create(podnet.BlocksPath, block(valid+"-5", `{"pool":"`+valid+`","index":5,"cidr":"100.64.0.160/27"}`)), "spec.node", "Required")
	})
	t.Run("block/immutable", func(t *testing.T) {
		err := c.Do(ctx, http.MethodPatch, podnet.BlocksPath+"/"+valid+"-3", kubeapi.ContentMergePatch, []byte(`{"spec":{"node":"n2"}}`), nil)
		wantInvalid(t, err, "the spec of an AddressBlock is immutable")
		// Labels may change.
		err = c.Do(ctx, http.MethodPatch, podnet.BlocksPath+"/"+valid+"-3", kubeapi.ContentMergePatch, []byte(`{"metadata":{"labels":{"a":"b"}}}`), nil)
		if err != nil {
			t.Error(err)
		}
	})
}

// wantInvalid checks that err is the API's 422 and says each of want.
func wantInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	var apiErr *kubeapi.APIError
	if err == nil {
		t.Fatal("accepted")
	}
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusUnprocessableEntity {
		t.Fatalf("err = %v, want a 422", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v; want it to say %q", err, w)
		}
	}
}

// yamlJSON checks manifest is JSON and returns it.
func yamlJSON(t *testing.T, manifest string) []byte {
	t.Helper()
	if !json.Valid([]byte(manifest)) {
		t.Fatalf("not JSON: %s", manifest)
	}
	return []byte(manifest)
}
