// Package release finds and fetches neco releases on GitHub (or GitHub
// Enterprise, or the local pkg/githubtest server): the latest release an
// environment follows, and a version's Debian package, downloaded with
// retries, a length check and, when the release publishes one, a SHA-256
// checksum.
package release

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-github/v50/github"
	"golang.org/x/oauth2"

	"github.com/openneco/neco/pkg/neco"
)

// Errors callers tell apart.
var (
	ErrNoRelease = errors.New("release: no release found")
	ErrNoAsset   = errors.New("release: package asset missing from the release")
	ErrChecksum  = errors.New("release: checksum mismatch")
	ErrTruncated = errors.New("release: download shorter than the asset")
)

// Client talks to the GitHub API of one repository.
type Client struct {
	gh          *github.Client
	http        *http.Client
	owner, repo string
	// Attempts bounds download tries (default 3); Backoff is the first
	// pause between them, doubled each time (default 1 s).
	Attempts int
	Backoff  time.Duration
}

// New makes a client from the operator configuration: API base URL, token,
// proxy and repository.
func New(cfg neco.Config) (*Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.Proxy != "" {
		u, err := url.Parse(cfg.Proxy)
		if err != nil {
			return nil, fmt.Errorf("release: proxy: %w", err)
		}
		transport.Proxy = http.ProxyURL(u)
	}
	var rt http.RoundTripper = transport
	if cfg.GitHubToken != "" {
		rt = &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: cfg.GitHubToken}), Base: transport}
	}
	hc := &http.Client{Transport: rt, Timeout: 10 * time.Minute}
	api := cfg.GitHubAPIURL
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	var gh *github.Client
	if api == "https://api.github.com/" {
		gh = github.NewClient(hc)
	} else {
		var err error
		if gh, err = github.NewEnterpriseClient(api, api, hc); err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		// NewEnterpriseClient appends api/v3/ unless present; keep the URL
		// exactly as configured.
		gh.BaseURL, _ = url.Parse(api)
	}
	// Downloads follow GitHub's redirect to storage without the token.
	dl := &http.Client{Transport: transport, Timeout: 30 * time.Minute}
	return &Client{gh: gh, http: dl, owner: cfg.GitHubOwner, repo: cfg.GitHubRepo, Attempts: 3, Backoff: time.Second}, nil
}

// Latest returns the newest release version env follows: for prod GitHub's
// latest release, for staging the newest release-* tag (pre-releases
// included), for dev the newest test-* tag; drafts are never used. Tags
// that are not well-formed versions are skipped and reported through
// skipped (may be nil). "test" returns neco.TestVersion and "none"
// ErrNoRelease without asking GitHub.
func (c *Client) Latest(ctx context.Context, env neco.Env, skipped func(tag string, err error)) (string, error) {
	if skipped == nil {
		skipped = func(string, error) {}
	}
	switch env {
	case neco.EnvNone:
		return "", ErrNoRelease
	case neco.EnvTest:
		return neco.TestVersion, nil
	case neco.EnvProd:
		rel, _, err := c.gh.Repositories.GetLatestRelease(ctx, c.owner, c.repo)
		if err != nil {
			if isNotFound(err) {
				return "", ErrNoRelease
			}
			return "", fmt.Errorf("release: latest release of %s/%s: %w", c.owner, c.repo, err)
		}
		v, err := neco.VersionFromTag(rel.GetTagName(), neco.ReleaseTagPrefix)
		if err != nil {
			return "", fmt.Errorf("release: latest release of %s/%s: %w", c.owner, c.repo, err)
		}
		return v.String(), nil
	}
	prefix := neco.TagPrefix(env)
	var best neco.Version
	opts := &github.ListOptions{PerPage: 100}
	for {
		rels, resp, err := c.gh.Repositories.ListReleases(ctx, c.owner, c.repo, opts)
		if err != nil {
			return "", fmt.Errorf("release: list releases of %s/%s: %w", c.owner, c.repo, err)
		}
		for _, rel := range rels {
			if rel.GetDraft() || !strings.HasPrefix(rel.GetTagName(), prefix) {
				continue
			}
			v, err := neco.VersionFromTag(rel.GetTagName(), prefix)
			if err != nil {
				skipped(rel.GetTagName(), err)
				continue
			}
			if v.Compare(best) > 0 {
				best = v
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if best.IsZero() {
		return "", ErrNoRelease
	}
	return best.String(), nil
}

func isNotFound(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

// Download fetches the package of version (tag prefix per env) into dir and
// returns its path. It retries transient failures, checks the length
// against the asset's size and, when the release has an asset
// "<package>.sha256" or "SHA256SUMS", the checksum. A failed download
// leaves no file behind.
func (c *Client) Download(ctx context.Context, env neco.Env, version, dir string) (string, error) {
	tag := neco.TagPrefix(env) + version
	rel, _, err := c.gh.Repositories.GetReleaseByTag(ctx, c.owner, c.repo, tag)
	if err != nil {
		if isNotFound(err) {
			return "", fmt.Errorf("%w: %s/%s has no release %s", ErrNoRelease, c.owner, c.repo, tag)
		}
		return "", fmt.Errorf("release: release %s: %w", tag, err)
	}
	name := neco.DebName(version)
	var pkg, sumFile, sums *github.ReleaseAsset
	for _, a := range rel.Assets {
		switch a.GetName() {
		case name:
			pkg = a
		case name + ".sha256":
			sumFile = a
		case "SHA256SUMS":
			sums = a
		}
	}
	if pkg == nil {
		return "", fmt.Errorf("%w: release %s has no asset %s", ErrNoAsset, tag, name)
	}
	var want string
	switch {
	case sumFile != nil:
		data, err := c.fetchSmall(ctx, sumFile)
		if err != nil {
			return "", err
		}
		want, _, _ = strings.Cut(strings.TrimSpace(string(data)), " ")
	case sums != nil:
		data, err := c.fetchSmall(ctx, sums)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && strings.TrimPrefix(f[1], "*") == name {
				want = f[0]
			}
		}
		if want == "" {
			return "", fmt.Errorf("%w: SHA256SUMS of %s does not list %s", ErrChecksum, tag, name)
		}
	}
	path := filepath.Join(dir, name)
	err = c.retry(ctx, func() error { return c.fetchFile(ctx, pkg, path, want) })
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// retry runs f up to Attempts times; checksum mismatches are not retried
// beyond the attempts either, but are reported as such.
func (c *Client) retry(ctx context.Context, f func() error) error {
	backoff := cmp.Or(c.Backoff, time.Second)
	var err error
	for i := range max(c.Attempts, 1) {
		if i > 0 {
			slog.Warn("download failed; retrying", "attempt", i, "error", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

func (c *Client) open(ctx context.Context, a *github.ReleaseAsset) (io.ReadCloser, error) {
	rc, _, err := c.gh.Repositories.DownloadReleaseAsset(ctx, c.owner, c.repo, a.GetID(), c.http)
	if err != nil {
		return nil, fmt.Errorf("release: download %s: %w", a.GetName(), err)
	}
	return rc, nil
}

func (c *Client) fetchSmall(ctx context.Context, a *github.ReleaseAsset) ([]byte, error) {
	var data []byte
	err := c.retry(ctx, func() error {
		rc, err := c.open(ctx, a)
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err = io.ReadAll(io.LimitReader(rc, 1<<20))
		if err != nil {
			return fmt.Errorf("release: download %s: %w", a.GetName(), err)
		}
		return nil
	})
	return data, err
}

func (c *Client) fetchFile(ctx context.Context, a *github.ReleaseAsset, path, wantSum string) error {
	rc, err := c.open(ctx, a)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if err != nil {
		return fmt.Errorf("%w: %s after %d of %d bytes: %v", ErrTruncated, a.GetName(), n, a.GetSize(), err)
	}
	if n != int64(a.GetSize()) {
		return fmt.Errorf("%w: %s is %d bytes, the release says %d", ErrTruncated, a.GetName(), n, a.GetSize())
	}
	if got := hex.EncodeToString(h.Sum(nil)); wantSum != "" && !strings.EqualFold(got, wantSum) {
		return fmt.Errorf("%w: %s has SHA-256 %s, the release says %s", ErrChecksum, a.GetName(), got, wantSum)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
