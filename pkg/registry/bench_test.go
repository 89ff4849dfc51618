package registry_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cybozu-go/log"
	"github.com/cybozu-go/well"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/openneco/neco/pkg/daemon"
)

// BenchmarkRegistryPull compares, on loopback in one process, a pull of an
// image with one ~100 MiB incompressible layer from the registry's public
// TLS listener (go-containerregistry: manifest, config, the compressed
// layer read to the end, every digest verified) with a plain HTTPS GET of
// the very same blob file, served by a net/http file server on the same
// server stack (daemon.Server, same certificate, HTTP/2) without
// verification: what the registry costs over a download of the bytes.
//
// registry-pull and https-download measure each alone (MB/s counts the
// layer's bytes only, so the pull's manifest and config are its overhead);
// alternating runs one of each per iteration, in turns, and reports the
// medians of both and the median of the per-iteration ratios, pull/http
// (throughput of the pull over that of the download; issue 13's target is
// at least 0.8).
func BenchmarkRegistryPull(b *testing.B) {
	const layerSize = 100 << 20
	// No access log lines between the results (well logs every request).
	logger := log.DefaultLogger()
	threshold := logger.Threshold()
	logger.SetThreshold(log.LvError)
	b.Cleanup(func() { logger.SetThreshold(threshold) })
	ca := newTestCA(b)
	reg := startRegistry(b, ca, testConfig(b, ca))
	addrs := reg.Addrs

	img, layer := bigImage(b, layerSize)
	ref := "bench/big:1"
	wref, err := name.NewTag(addrs.Write.String()+"/"+ref, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(wref, img); err != nil {
		b.Fatalf("push: %v", err)
	}
	digest, err := layer.Digest()
	if err != nil {
		b.Fatal(err)
	}
	blobSize, err := layer.Size()
	if err != nil {
		b.Fatal(err)
	}
	// The filesystem driver's layout: the file the registry serves the
	// layer from.
	blobFile := filepath.Join(reg.cfg.StorageDir, "docker/registry/v2/blobs", digest.Algorithm, digest.Hex[:2], digest.Hex, "data")
	if fi, err := os.Stat(blobFile); err != nil || fi.Size() != blobSize {
		b.Fatalf("blob file %s: %v (want %d bytes)", blobFile, err, blobSize)
	}
	fileURL := "https://" + startFileServer(b, ca, blobFile) + "/blob"

	pref, err := name.NewTag(addrs.Public.String()+"/"+ref, name.StrictValidation)
	if err != nil {
		b.Fatal(err)
	}
	pullTr, getTr := reg.publicTransport(), reg.publicTransport()
	b.Cleanup(pullTr.CloseIdleConnections)
	b.Cleanup(getTr.CloseIdleConnections)
	pull := func(b *testing.B) time.Duration {
		start := time.Now()
		if err := pullAll(pref, httpsOnly{pullTr}, blobSize); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	get := func(b *testing.B) time.Duration {
		start := time.Now()
		if err := download(getTr, fileURL, blobSize); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	b.Run("registry-pull", func(b *testing.B) {
		b.SetBytes(blobSize)
		for b.Loop() {
			pull(b)
		}
	})
	b.Run("https-download", func(b *testing.B) {
		b.SetBytes(blobSize)
		for b.Loop() {
			get(b)
		}
	})
	b.Run("alternating", func(b *testing.B) {
		var pullMBs, getMBs, ratios []float64
		i := 0
		for b.Loop() {
			var tp, tg time.Duration
			if i%2 == 0 {
				tp, tg = pull(b), get(b)
			} else {
				tg, tp = get(b), pull(b)
			}
			i++
			pullMBs = append(pullMBs, float64(blobSize)/1e6/tp.Seconds())
			getMBs = append(getMBs, float64(blobSize)/1e6/tg.Seconds())
			ratios = append(ratios, tg.Seconds()/tp.Seconds())
		}
		b.ReportMetric(median(pullMBs), "pull-MB/s")
		b.ReportMetric(median(getMBs), "https-MB/s")
		b.ReportMetric(median(ratios), "pull/http")
	})
}

// pullAll reads the image ref names the way a container runtime does:
// manifest, config, then every compressed layer to its end, each checked
// against its digest by go-containerregistry.
func pullAll(ref name.Reference, tr http.RoundTripper, wantLayer int64) error {
	img, err := remote.Image(ref, remote.WithTransport(tr))
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("pull %s: config: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("pull %s: layers: %w", ref, err)
	}
	var total int64
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("pull %s: layer: %w", ref, err)
		}
		n, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("pull %s: layer: %w", ref, err)
		}
		total += n
	}
	if total != wantLayer {
		return fmt.Errorf("pull %s: %d layer bytes, want %d", ref, total, wantLayer)
	}
	return nil
}

// download GETs url and discards the body.
func download(tr http.RoundTripper, url string, want int64) error {
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if n != want {
		return fmt.Errorf("GET %s: %d bytes, want %d", url, n, want)
	}
	return nil
}

// bigImage is an OCI image with one gzip layer of a tar holding size
// random bytes, compressed once here (go-containerregistry's random.Layer
// compresses again each time the layer is read).
func bigImage(b *testing.B, size int) (v1.Image, v1.Layer) {
	b.Helper()
	data := make([]byte, size)
	rand.Read(data)
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "random", Mode: 0o644, Size: int64(size), ModTime: time.Unix(0, 0)}); err != nil {
		b.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	gz := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		b.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		b.Fatal(err)
	}
	return img, layer
}

// startFileServer serves file at /blob over TLS with ca's certificate, on
// the server the registry's listeners use (daemon.Server: HTTP/2, well),
// until the benchmark ends; it returns host:port.
func startFileServer(b *testing.B, ca testCA, file string) string {
	b.Helper()
	cert, err := tls.LoadX509KeyPair(ca.Cert, ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	env := well.NewEnvironment(context.Background())
	srv := daemon.Server{Addr: "127.0.0.1:0", Handler: mux, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}}
	addr, err := srv.Start(env)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		env.Cancel(nil)
		env.Wait()
	})
	return addr.String()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
