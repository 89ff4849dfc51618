package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/openneco/neco/pkg/cke/kubeapi"
	"github.com/openneco/neco/pkg/podnet"
)

// maxLabelValue is the length of the longest label value.
const maxLabelValue = 63

// listPage is the number of objects read per request of a LIST.
const listPage = 500

// list reads every object at path (a collection) that matches the label
// selector (empty: all).
func list[T any](ctx context.Context, c *kubeapi.Client, path, selector string) ([]T, error) {
	q := url.Values{"limit": {fmt.Sprint(listPage)}}
	if selector != "" {
		q.Set("labelSelector", selector)
	}
	var items []T
	for {
		var page struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []T `json:"items"`
		}
		if err := c.Get(ctx, path+"?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if page.Metadata.Continue == "" {
			return items, nil
		}
		q.Set("continue", page.Metadata.Continue)
	}
}

func (a *Allocator) listBlocks(ctx context.Context, selector string) ([]podnet.AddressBlock, error) {
	return list[podnet.AddressBlock](ctx, a.cfg.Client, podnet.BlocksPath, selector)
}

// readNode reads the UID of the Node.
func (a *Allocator) readNode(ctx context.Context) (string, error) {
	var n struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if a.cfg.Node == "" {
		return "", fmt.Errorf("ipam: no node name: %w", ErrNodeNotFound)
	}
	if len(a.cfg.Node) > maxLabelValue {
		return "", fmt.Errorf("ipam: node name %s is longer than %d characters, the most a label value of its blocks may have", a.cfg.Node, maxLabelValue)
	}
	err := a.cfg.Client.Get(ctx, "/api/v1/nodes/"+url.PathEscape(a.cfg.Node), &n)
	if kubeapi.IsNotFound(err) {
		return "", fmt.Errorf("ipam: node %s: %w", a.cfg.Node, ErrNodeNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("ipam: node %s: %w", a.cfg.Node, err)
	}
	a.nodeUID = n.Metadata.UID
	return a.nodeUID, nil
}

// node is the UID of the Node, read once.
func (a *Allocator) node(ctx context.Context) (string, error) {
	if a.nodeUID != "" {
		return a.nodeUID, nil
	}
	return a.readNode(ctx)
}

// createBlock creates the block of pool at index, of prefix, for this
// node, whose Node has nodeUID.
func (a *Allocator) createBlock(ctx context.Context, pool string, index int, prefix netip.Prefix, nodeUID string) (*block, error) {
	ab := podnet.AddressBlock{
		APIVersion: podnet.APIVersion,
		Kind:       podnet.KindAddressBlock,
		Metadata: podnet.ObjectMeta{
			Name:   podnet.BlockName(pool, index),
			Labels: map[string]string{podnet.PoolLabel: pool, podnet.NodeLabel: a.cfg.Node},
			OwnerReferences: []podnet.OwnerReference{
				{APIVersion: "v1", Kind: "Node", Name: a.cfg.Node, UID: nodeUID},
			},
		},
		Spec: podnet.AddressBlockSpec{Pool: pool, Node: a.cfg.Node, Index: index, CIDR: prefix.String()},
	}
	body, err := json.Marshal(ab)
	if err != nil {
		return nil, err
	}
	var out podnet.AddressBlock
	if err := a.cfg.Client.Do(ctx, http.MethodPost, podnet.BlocksPath, kubeapi.ContentJSON, body, &out); err != nil {
		return nil, err
	}
	return blockFrom(out)
}

// recreate creates the block of pool at index, of prefix, for this node
// again. One that exists is taken if it is this node's, and otherwise an
// ErrAddressConflict naming its node.
func (a *Allocator) recreate(ctx context.Context, pool string, index int, prefix netip.Prefix) (*block, error) {
	uid, err := a.node(ctx)
	if err != nil {
		return nil, err
	}
	name := podnet.BlockName(pool, index)
	b, err := a.createBlock(ctx, pool, index, prefix, uid)
	if err == nil {
		return b, nil
	}
	if !kubeapi.IsAlreadyExists(err) {
		return nil, fmt.Errorf("claim block %s again: %w", name, err)
	}
	var cur podnet.AddressBlock
	if err := a.cfg.Client.Get(ctx, podnet.BlocksPath+"/"+url.PathEscape(name), &cur); err != nil {
		return nil, fmt.Errorf("claim block %s again: %w", name, err)
	}
	if cur.Spec.Node != a.cfg.Node {
		return nil, fmt.Errorf("block %s (%s) belongs to node %s now: %w", name, cur.Spec.CIDR, cur.Spec.Node, ErrAddressConflict)
	}
	return blockFrom(cur)
}

// deleteBlock deletes b if it is still the object of its UID: one of its
// name created since, by another node, stays.
func (a *Allocator) deleteBlock(ctx context.Context, b *block) error {
	if b.uid == "" {
		// Never created, or gone.
		return nil
	}
	body := fmt.Appendf(nil, `{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":%q}}`, b.uid)
	err := a.cfg.Client.Do(ctx, http.MethodDelete, podnet.BlocksPath+"/"+url.PathEscape(b.name), kubeapi.ContentJSON, body, nil)
	if kubeapi.IsNotFound(err) || kubeapi.IsConflict(err) {
		// Gone, or another object (a UID precondition failing is a
		// conflict).
		return nil
	}
	return err
}
