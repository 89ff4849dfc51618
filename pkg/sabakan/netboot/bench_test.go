package netboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
)

// BenchmarkAssetDownload compares, in one run, 100 concurrent downloads of
// a 100 MiB asset from sabakan (the daemon's handler chain: web server,
// access control, metrics, bootapi) with the same downloads of the same
// file from net/http's FileServer, both on loopback. Reported: the
// aggregate MiB/s of each and their ratio.
func BenchmarkAssetDownload(b *testing.B) {
	const size, clients = 100 << 20, 100
	ctx := context.Background()
	client := etcdtest.Client(b)
	st, err := store.Open(ctx, client, store.Options{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cs, err := content.New(client, content.Options{Dir: b.TempDir(), AdvertiseURL: "http://bench"})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	_, id, err := cs.PutAsset(ctx, content.AssetUpload{Name: "big.img", ContentType: "application/octet-stream", Size: size}, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	ws := web.New(web.Config{Store: st})
	ws.RegisterBoot(&bootapi.API{Content: cs, Ignitions: ignition.NewStore(client, nil), Machines: st})
	sabakan := httptest.NewServer(ws.Handler())
	defer sabakan.Close()
	files := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(cs.Dir(), "assets"))))
	defer files.Close()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
	round := func(url string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := hc.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err != nil || n != size {
					b.Errorf("GET %s: %d bytes, %v", url, n, err)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var tSabakan, tFiles time.Duration
	b.ResetTimer()
	for range b.N {
		tFiles += round(fmt.Sprintf("%s/%d", files.URL, id))
		tSabakan += round(sabakan.URL + "/api/v1/assets/big.img")
	}
	mib := float64(b.N) * clients * size / (1 << 20)
	b.ReportMetric(mib/tSabakan.Seconds(), "sabakan-MiB/s")
	b.ReportMetric(mib/tFiles.Seconds(), "fileserver-MiB/s")
	b.ReportMetric(tFiles.Seconds()/tSabakan.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
}
