package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/githubtest"
	"github.com/openneco/neco/pkg/neco"
)

const owner, repo = "openneco", "neco"

func newClient(t *testing.T, gh *githubtest.Server, token string) *Client {
	t.Helper()
	c, err := New(neco.ParseConfig(map[string]string{
		neco.KeyGitHubAPIURL: gh.APIURL(),
		neco.KeyGitHubRepo:   owner + "/" + repo,
		neco.KeyGitHubToken:  token,
	}))
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = 10 * time.Millisecond
	return c
}

func TestLatest(t *testing.T) {
	gh := githubtest.NewServer(t)
	gh.Token = "secret"
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	add := func(tag string, pre, draft bool, day int) {
		gh.AddRelease(owner, repo, githubtest.Release{Tag: tag, Prerelease: pre, Draft: draft, CreatedAt: base.AddDate(0, 0, day)})
	}
	add("release-2025.03.01-10", false, false, 0)
	add("release-2025.03.02-11", false, false, 1) // GitHub's latest
	add("release-2025.03.03-12", true, false, 2)  // pre-release: staging only
	add("release-2025.03.09-99", false, true, 3)  // draft: never
	add("test-2025.03.04-13", true, false, 4)     // dev
	add("release-2025.3.5-14", false, false, -1)  // malformed, older
	add("unrelated-tag", false, false, -2)
	// Enough releases to need a second page of 100.
	for i := range 120 {
		add("test-2024.01.01-"+itoa(i+1), false, false, -10-i)
	}
	gh.AddRelease("someone", "else", githubtest.Release{Tag: "release-2030.01.01-1"})

	c := newClient(t, gh, "secret")
	ctx := context.Background()
	var skipped []string
	tests := []struct {
		env  neco.Env
		want string
		err  error
	}{
		{neco.EnvProd, "2025.03.02-11", nil},
		{neco.EnvStaging, "2025.03.03-12", nil},
		{neco.EnvDev, "2025.03.04-13", nil},
		{neco.EnvTest, neco.TestVersion, nil},
		{neco.EnvNone, "", ErrNoRelease},
	}
	for _, tt := range tests {
		t.Run(string(tt.env), func(t *testing.T) {
			got, err := c.Latest(ctx, tt.env, func(tag string, err error) { skipped = append(skipped, tag) })
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Latest = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if len(skipped) != 1 || skipped[0] != "release-2025.3.5-14" {
		t.Errorf("skipped = %v, want the malformed tag once (staging)", skipped)
	}

	// The newest release-* tag is malformed: prod reports it, clearly.
	add("release-2025.13.01-20", false, false, 10)
	if _, err := c.Latest(ctx, neco.EnvProd, nil); !errors.Is(err, neco.ErrBadVersion) {
		t.Errorf("malformed latest tag: err = %v, want ErrBadVersion", err)
	}
	if _, err := newClient(t, gh, "wrong").Latest(ctx, neco.EnvProd, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad token: err = %v, want a 401", err)
	}
	empty := githubtest.NewServer(t)
	if _, err := newClient(t, empty, "").Latest(ctx, neco.EnvProd, nil); !errors.Is(err, ErrNoRelease) {
		t.Errorf("no releases (prod): err = %v", err)
	}
	if _, err := newClient(t, empty, "").Latest(ctx, neco.EnvStaging, nil); !errors.Is(err, ErrNoRelease) {
		t.Errorf("no releases (staging): err = %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func TestDownload(t *testing.T) {
	const v = "2025.03.10-1"
	deb := []byte(strings.Repeat("not really a deb, but bytes to check\n", 1000))
	name := neco.DebName(v)
	ctx := context.Background()

	tests := []struct {
		name   string
		assets []githubtest.Asset
		setup  func(gh *githubtest.Server)
		err    error
	}{
		{name: "no checksum", assets: []githubtest.Asset{{Name: name, Data: deb}}},
		{name: "sha256 file", assets: []githubtest.Asset{{Name: name, Data: deb}, {Name: name + ".sha256", Data: []byte(sum(deb) + "  " + name + "\n")}}},
		{name: "SHA256SUMS", assets: []githubtest.Asset{{Name: name, Data: deb}, {Name: "SHA256SUMS", Data: []byte(sum([]byte("x")) + "  other\n" + sum(deb) + " *" + name + "\n")}}},
		{name: "wrong checksum", assets: []githubtest.Asset{{Name: name, Data: deb}, {Name: name + ".sha256", Data: []byte(sum([]byte("tampered")))}}, err: ErrChecksum},
		{name: "SHA256SUMS without the package", assets: []githubtest.Asset{{Name: name, Data: deb}, {Name: "SHA256SUMS", Data: []byte(sum(deb) + "  other.deb\n")}}, err: ErrChecksum},
		{name: "missing asset", assets: []githubtest.Asset{{Name: "neco_" + v + "_arm64.deb", Data: deb}}, err: ErrNoAsset},
		{name: "truncated", assets: []githubtest.Asset{{Name: name, Data: deb}}, setup: func(gh *githubtest.Server) { gh.TruncateAsset(name, 100) }, err: ErrTruncated},
		{name: "transient 500s", assets: []githubtest.Asset{{Name: name, Data: deb}}, setup: func(gh *githubtest.Server) { gh.FailAsset(name, 2) }},
		{name: "persistent 500s", assets: []githubtest.Asset{{Name: name, Data: deb}}, setup: func(gh *githubtest.Server) { gh.FailAsset(name, 5) }, err: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := githubtest.NewServer(t)
			gh.AddRelease(owner, repo, githubtest.Release{Tag: "release-" + v, Assets: tt.assets})
			if tt.setup != nil {
				tt.setup(gh)
			}
			dir := t.TempDir()
			path, err := newClient(t, gh, "").Download(ctx, neco.EnvProd, v, dir)
			switch {
			case tt.err == errAny && err == nil, tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("Download err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("failed download left %v behind", entries)
				}
				return
			}
			got, _ := os.ReadFile(path)
			if string(got) != string(deb) || filepath.Base(path) != name {
				t.Errorf("downloaded %s with %d bytes", path, len(got))
			}
		})
	}

	gh := githubtest.NewServer(t)
	if _, err := newClient(t, gh, "").Download(ctx, neco.EnvDev, v, t.TempDir()); !errors.Is(err, ErrNoRelease) || !strings.Contains(err.Error(), "test-"+v) {
		t.Errorf("no such release: err = %v", err)
	}
}

var errAny = errors.New("any error")

// TestProxy: with a proxy configured, API calls and downloads go through it.
func TestProxy(t *testing.T) {
	gh := githubtest.NewServer(t)
	const v = "2025.03.10-1"
	gh.AddRelease(owner, repo, githubtest.Release{Tag: "release-" + v, Assets: []githubtest.Asset{{Name: neco.DebName(v), Data: []byte("deb")}}})
	var mu sync.Mutex
	var seen []string
	target, _ := url.Parse(gh.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	c, err := New(neco.ParseConfig(map[string]string{neco.KeyGitHubAPIURL: gh.APIURL(), neco.KeyGitHubRepo: owner + "/" + repo, neco.KeyProxy: proxy.URL}))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Latest(context.Background(), neco.EnvProd, nil); err != nil || got != v {
		t.Fatalf("Latest = %q, %v", got, err)
	}
	if _, err := c.Download(context.Background(), neco.EnvProd, v, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 || !strings.HasPrefix(seen[len(seen)-1], "/download/") {
		t.Errorf("requests through the proxy: %v", seen)
	}
}
