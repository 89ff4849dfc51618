package content

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// An upload on this server races the server's own replication loop, which
// a watch kicks as the upload reserves its ID. The loop once read the index
// before listing the files, saw the new file without its (not yet
// committed) index entry after the upload had cleared its busy mark, and
// deleted it: the asset was then on no server (the virtual data center's
// QEMU machine found its bgp-node-agent asset gone, 404 on every server).
func TestUploadsSurviveConcurrentReconciles(t *testing.T) {
	s, err := New(etcdtest.Client(t), Options{Dir: t.TempDir(), AdvertiseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s.Reconcile(ctx) //nolint:errcheck // peers are unreachable here: only removals matter
		}
	}()
	const n = 200
	for i := range n {
		body := []byte(fmt.Sprintf("asset %d", i))
		_, id, err := s.PutAsset(ctx, AssetUpload{Name: fmt.Sprintf("a%d", i%10), ContentType: "text/plain", Size: int64(len(body))}, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// The latest version of each name must stay on this server.
		a, _, err := s.getAsset(ctx, fmt.Sprintf("a%d", i%10))
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == id && !a.Exists {
			cancel()
			wg.Wait()
			t.Fatalf("upload %d (asset a%d, id %d): its file was removed right after the upload", i, i%10, id)
		}
	}
	cancel()
	wg.Wait()
	if err := s.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	assets, err := s.listAssetMeta(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range assets {
		if !s.hasFile(s.assetPath(a.ID)) {
			t.Errorf("asset %s (id %d) has no file on the server that uploaded it", a.Name, a.ID)
		}
	}
}
