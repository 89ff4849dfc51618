package registry_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// httpsOnly fails any request that is not https, so that a pull cannot
// fall back to plain HTTP unnoticed (go-containerregistry tries http for
// loopback registries when https fails).
type httpsOnly struct{ http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("refusing %s %s: not https", r.Method, r.URL)
	}
	return h.RoundTripper.RoundTrip(r)
}

// push writes img as host/repo:tag through the write listener.
func push(t *testing.T, host, repo, tag string, img v1.Image, tr http.RoundTripper) error {
	t.Helper()
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if tr == nil {
		tr = http.DefaultTransport
	}
	return remote.Write(ref, img, remote.WithTransport(tr))
}

// pullPublic reads host/repo:tag through the public listener over TLS and
// checks every digest (the manifest's, the config's, each layer's).
func pullPublic(t *testing.T, s *started, repo, tag string, want v1.Image) {
	t.Helper()
	ref, err := name.NewTag(s.publicHost()+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref, remote.WithTransport(httpsOnly{s.publicTransport()}))
	if err != nil {
		t.Fatalf("pull %s over TLS: %v", ref, err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("pulled %s does not verify: %v", ref, err)
	}
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gd != wd {
		t.Fatalf("pulled digest %s, pushed %s", gd, wd)
	}
}

func getJSON(t *testing.T, c *http.Client, url string, v any) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// TestPushWritePullPublic pushes an image through the write listener and
// pulls it back through the public TLS listener with verified digests;
// /health and /metrics tell about it.
func TestPushWritePullPublic(t *testing.T) {
	ca := newTestCA(t)
	s := startRegistry(t, ca, testConfig(t, ca))
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(t, s.writeHost(), "neco/test", "v1", img, nil); err != nil {
		t.Fatalf("push: %v", err)
	}
	pullPublic(t, s, "neco/test", "v1", img)

	var health map[string]string
	if code := getJSON(t, http.DefaultClient, "http://"+s.Metrics.String()+"/health", &health); code != 200 || health["health"] != "healthy" {
		t.Errorf("/health: %d %v", code, health)
	}
	resp, err := http.Get("http://" + s.Metrics.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"neco_registry_blob_uploads_total 4", // 3 layers and the config
		"neco_registry_manifest_pushes_total 1",
		`neco_registry_requests_total{code="200",listener="public",method="GET"}`,
		`neco_registry_response_bytes_total{listener="public"}`,
		"registry_storage_action_seconds",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestPublicIsReadOnly sends every writing method to the public listener:
// each is answered 405 with an OCI error body, and nothing changes in the
// storage directory.
func TestPublicIsReadOnly(t *testing.T) {
	ca := newTestCA(t)
	s := startRegistry(t, ca, testConfig(t, ca))
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(t, s.writeHost(), "neco/ro", "v1", img, nil); err != nil {
		t.Fatal(err)
	}
	dgst, _ := img.Digest()
	before := tree(t, s.cfg.StorageDir)
	c := s.publicClient()
	base := "https://" + s.publicHost()
	blob := "sha256:" + strings.Repeat("0", 64)
	for _, tt := range []struct{ method, path string }{
		{"POST", "/v2/neco/ro/blobs/uploads/"},
		{"POST", "/v2/neco/other/blobs/uploads/?digest=" + blob},
		{"PUT", "/v2/neco/ro/manifests/v2"},
		{"PUT", "/v2/neco/ro/blobs/uploads/x?digest=" + blob},
		{"PATCH", "/v2/neco/ro/blobs/uploads/x"},
		{"DELETE", "/v2/neco/ro/manifests/" + dgst.String()},
		{"DELETE", "/v2/neco/ro/manifests/v1"},
		{"DELETE", "/v2/neco/ro/blobs/" + blob},
		{"GET", "/v2/neco/ro/blobs/uploads/x"},
		{"OPTIONS", "/v2/"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(`{"schemaVersion":2}`))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not an OCI error: %v", err)
			}
			if resp.StatusCode != http.StatusMethodNotAllowed || len(body.Errors) != 1 || body.Errors[0].Code != "UNSUPPORTED" || body.Errors[0].Message == "" {
				t.Errorf("got %d %+v, want 405 UNSUPPORTED", resp.StatusCode, body)
			}
			if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("Allow %q", allow)
			}
		})
	}
	if after := tree(t, s.cfg.StorageDir); !slices.Equal(before, after) {
		t.Errorf("the storage changed:\nbefore %v\nafter  %v", before, after)
	}
	// Reads still work, the catalog included.
	var cat struct{ Repositories []string }
	if code := getJSON(t, c, base+"/v2/_catalog", &cat); code != 200 || !slices.Equal(cat.Repositories, []string{"neco/ro"}) {
		t.Errorf("catalog: %d %v", code, cat)
	}
	if code := getJSON(t, c, base+"/metrics", nil); code != 404 {
		t.Errorf("a path outside /v2/ answered %d, want 404", code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// startUpload opens an upload session on the write listener and returns
// its absolute location.
func startUpload(t *testing.T, base, repo string) string {
	t.Helper()
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc.String()
}

func withDigest(loc, dgst string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + dgst
}

// ociError does the request and returns its status and first error code.
func ociError(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Errors []struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&body)
	code := ""
	if len(body.Errors) > 0 {
		code = body.Errors[0].Code
	}
	return resp.StatusCode, code
}

func blobStatus(t *testing.T, base, repo, dgst string) int {
	t.Helper()
	resp, err := http.Head(base + "/v2/" + repo + "/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBadUploadsLeaveNoTrace: a blob whose content does not match the
// digest of its final PUT, a truncated blob (fewer bytes than the digest
// names, and a body cut off by a dropped connection) and a manifest naming
// a missing blob are refused, leave no blob or tag behind, and the same
// image then pushes and pulls cleanly.
func TestBadUploadsLeaveNoTrace(t *testing.T) {
	ca := newTestCA(t)
	s := startRegistry(t, ca, testConfig(t, ca))
	base := "http://" + s.writeHost()
	const repo = "neco/bad"
	img, err := random.Image(32<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	content, err := io.ReadAll(must(layers[0].Compressed()))
	if err != nil {
		t.Fatal(err)
	}
	good := sha(content)

	t.Run("corrupt", func(t *testing.T) {
		corrupt := bytes.Clone(content)
		corrupt[len(corrupt)/2] ^= 0xff
		req, _ := http.NewRequest("PUT", withDigest(startUpload(t, base, repo), good), bytes.NewReader(corrupt))
		if status, code := ociError(t, req); status != 400 || code != "DIGEST_INVALID" {
			t.Errorf("corrupt blob: %d %s, want 400 DIGEST_INVALID", status, code)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		loc := startUpload(t, base, repo)
		req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(content[:len(content)/2]))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH: %s", resp.Status)
		}
		next, _ := resp.Location()
		req, _ = http.NewRequest("PUT", withDigest(next.String(), good), nil)
		if status, code := ociError(t, req); status != 400 || code != "DIGEST_INVALID" {
			t.Errorf("truncated blob: %d %s, want 400 DIGEST_INVALID", status, code)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		loc := startUpload(t, base, repo)
		conn, err := net.Dial("tcp", s.writeHost())
		if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(withDigest(loc, good), base)
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, s.writeHost(), len(content))
		conn.Write(content[:len(content)/2])
		time.Sleep(200 * time.Millisecond)
		conn.Close()
	})
	t.Run("manifest with a missing blob", func(t *testing.T) {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(m)
		req, _ := http.NewRequest("PUT", base+"/v2/"+repo+"/manifests/broken", bytes.NewReader(raw))
		req.Header.Set("Content-Type", string(m.MediaType))
		if status, code := ociError(t, req); status != 400 || code != "MANIFEST_BLOB_UNKNOWN" {
			t.Errorf("manifest naming missing blobs: %d %s, want 400 MANIFEST_BLOB_UNKNOWN", status, code)
		}
	})
	// The dropped connection's handler may still be reading: wait for it
	// to give up before looking.
	deadline := time.Now().Add(10 * time.Second)
	for blobStatus(t, base, repo, good) != http.StatusNotFound && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := blobStatus(t, base, repo, good); st != http.StatusNotFound {
		t.Errorf("the refused blob answers %d, want 404", st)
	}

	if err := push(t, s.writeHost(), repo, "v1", img, nil); err != nil {
		t.Fatalf("a correct push after the refused ones: %v", err)
	}
	pullPublic(t, s, repo, "v1", img)
	tags, err := remote.List(must(name.NewRepository(s.publicHost()+"/"+repo)), remote.WithTransport(httpsOnly{s.publicTransport()}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags %v, want [v1]", tags)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
