// Package githubtest is a local HTTP server that speaks the part of the
// GitHub REST API that neco's updater and worker use, so that they are
// tested against real HTTP, real JSON and real redirects instead of the
// live GitHub:
//
//	GET /api/v3/repos/{owner}/{repo}/releases              (paginated, newest first)
//	GET /api/v3/repos/{owner}/{repo}/releases/latest
//	GET /api/v3/repos/{owner}/{repo}/releases/tags/{tag}
//	GET /api/v3/repos/{owner}/{repo}/releases/{id}
//	GET /api/v3/repos/{owner}/{repo}/releases/{id}/assets
//	GET /api/v3/repos/{owner}/{repo}/releases/assets/{id}  (JSON, or with
//	    Accept: application/octet-stream a 302 to the download, as GitHub does)
//
// The base URL is GitHub Enterprise style (URL()+"/api/v3/"), which
// go-github's NewEnterpriseClient accepts. Faults can be injected per
// asset: truncated downloads and server errors.
package githubtest

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Asset is a file attached to a release.
type Asset struct {
	Name string
	Data []byte
}

// Release is a GitHub release.
type Release struct {
	Tag        string
	Name       string
	Draft      bool
	Prerelease bool
	Assets     []Asset
	// CreatedAt orders releases; zero means "now" when added.
	CreatedAt time.Time
}

type release struct {
	id    int64
	owner string
	repo  string
	Release
	assetIDs []int64
}

type asset struct {
	id        int64
	releaseID int64
	Asset
	truncate int // serve only this many bytes (<0: all)
	failures int // answer 500 this many more times
}

// Server is the fake GitHub. Its methods are safe for concurrent use.
type Server struct {
	// Token, when set, must be presented as "Authorization: Bearer <Token>"
	// (or "token <Token>"); other requests get 401.
	Token string

	srv     *httptest.Server
	handler http.Handler

	mu       sync.Mutex
	nextID   int64
	releases []*release
	assets   map[int64]*asset
	hits     map[string]int
}

// NewServer starts a server on a loopback port that stops when t ends.
func NewServer(t testing.TB) *Server {
	s := New()
	s.srv = httptest.NewServer(s.Handler())
	t.Cleanup(s.srv.Close)
	return s
}

// New returns a server that is not listening: serve Handler on a listener
// of your own (the virtual data center serves it inside a network
// namespace). URL and APIURL need NewServer.
func New() *Server {
	s := &Server{nextID: 1000, assets: map[int64]*asset{}, hits: map[string]int{}}
	mux := http.NewServeMux()
	const repo = "/api/v3/repos/{owner}/{repo}"
	mux.HandleFunc("GET "+repo+"/releases", s.listReleases)
	mux.HandleFunc("GET "+repo+"/releases/latest", s.latestRelease)
	mux.HandleFunc("GET "+repo+"/releases/{id}", s.releaseByID)
	// tags/{tag}, assets/{id} and {id}/assets overlap as patterns.
	mux.HandleFunc("GET "+repo+"/releases/{a}/{b}", func(w http.ResponseWriter, r *http.Request) {
		a, b := r.PathValue("a"), r.PathValue("b")
		switch {
		case a == "tags":
			r.SetPathValue("tag", b)
			s.releaseByTag(w, r)
		case a == "assets":
			r.SetPathValue("id", b)
			s.getAsset(w, r)
		case b == "assets":
			r.SetPathValue("id", a)
			s.releaseAssets(w, r)
		default:
			writeError(w, http.StatusNotFound, "Not Found")
		}
	})
	mux.HandleFunc("GET /download/{id}/{name}", s.download)
	s.handler = s.auth(mux)
	return s
}

// Handler serves the API; links in its answers use the request's Host.
func (s *Server) Handler() http.Handler { return s.handler }

// base is the URL clients reached this server at.
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// URL is the server's root URL.
func (s *Server) URL() string { return s.srv.URL }

// APIURL is the REST API base URL, as configured in github-api-url.
func (s *Server) APIURL() string { return s.srv.URL + "/api/v3/" }

// AddRelease publishes a release of owner/repo and returns its ID.
func (s *Server) AddRelease(owner, repo string, r Release) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC().Add(time.Duration(s.nextID) * time.Nanosecond)
	}
	rel := &release{id: s.nextID, owner: owner, repo: repo, Release: r}
	for _, a := range r.Assets {
		s.nextID++
		s.assets[s.nextID] = &asset{id: s.nextID, releaseID: rel.id, Asset: a, truncate: -1}
		rel.assetIDs = append(rel.assetIDs, s.nextID)
	}
	s.releases = append(s.releases, rel)
	return rel.id
}

// RemoveRelease deletes the release with tag.
func (s *Server) RemoveRelease(owner, repo, tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = slices.DeleteFunc(s.releases, func(r *release) bool { return r.owner == owner && r.repo == repo && r.Tag == tag })
}

// TruncateAsset makes downloads of every asset called name end after n
// bytes although the full length is announced; n < 0 undoes it.
func (s *Server) TruncateAsset(name string, n int) {
	s.eachAsset(name, func(a *asset) { a.truncate = n })
}

// FailAsset makes the next n downloads of assets called name answer 500.
func (s *Server) FailAsset(name string, n int) {
	s.eachAsset(name, func(a *asset) { a.failures = n })
}

func (s *Server) eachAsset(name string, f func(*asset)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.assets {
		if a.Name == name {
			f(a)
		}
	}
}

// Hits counts the requests whose path starts with prefix, e.g.
// "/download/" for asset downloads.
func (s *Server) Hits(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		if s.Token != "" && !strings.HasPrefix(r.URL.Path, "/download/") {
			got := r.Header.Get("Authorization")
			if got != "Bearer "+s.Token && got != "token "+s.Token {
				writeError(w, http.StatusUnauthorized, "Bad credentials")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// sorted returns owner/repo's releases, newest first, under s.mu.
func (s *Server) sorted(owner, repo string) []*release {
	var out []*release
	for _, r := range s.releases {
		if r.owner == owner && r.repo == repo {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *release) int { return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.id, a.id)) })
	return out
}

func (s *Server) assetJSON(r *http.Request, a *asset) map[string]any {
	p := r.PathValue
	return map[string]any{
		"id":                   a.id,
		"name":                 a.Name,
		"size":                 len(a.Data),
		"state":                "uploaded",
		"content_type":         "application/octet-stream",
		"url":                  fmt.Sprintf("%s/api/v3/repos/%s/%s/releases/assets/%d", base(r), p("owner"), p("repo"), a.id),
		"browser_download_url": fmt.Sprintf("%s/download/%d/%s", base(r), a.id, a.Name),
	}
}

func (s *Server) releaseJSON(r *http.Request, rel *release) map[string]any {
	assets := []map[string]any{}
	for _, id := range rel.assetIDs {
		assets = append(assets, s.assetJSON(r, s.assets[id]))
	}
	return map[string]any{
		"id":           rel.id,
		"tag_name":     rel.Tag,
		"name":         cmp.Or(rel.Name, rel.Tag),
		"draft":        rel.Draft,
		"prerelease":   rel.Prerelease,
		"created_at":   rel.CreatedAt.Format(time.RFC3339),
		"published_at": rel.CreatedAt.Format(time.RFC3339),
		"html_url":     fmt.Sprintf("%s/%s/%s/releases/tag/%s", base(r), rel.owner, rel.repo, rel.Tag),
		"assets":       assets,
	}
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	page, perPage := 1, 30
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sorted(r.PathValue("owner"), r.PathValue("repo"))
	out := []map[string]any{}
	for i := (page - 1) * perPage; i < len(all) && i < page*perPage; i++ {
		out = append(out, s.releaseJSON(r, all[i]))
	}
	if page*perPage < len(all) {
		next := *r.URL
		q := next.Query()
		q.Set("page", strconv.Itoa(page+1))
		q.Set("per_page", strconv.Itoa(perPage))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, base(r), next.RequestURI()))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) latestRelease(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rel := range s.sorted(r.PathValue("owner"), r.PathValue("repo")) {
		if !rel.Draft && !rel.Prerelease {
			writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
			return
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) findRelease(r *http.Request, match func(*release) bool) *release {
	for _, rel := range s.sorted(r.PathValue("owner"), r.PathValue("repo")) {
		if match(rel) {
			return rel
		}
	}
	return nil
}

func (s *Server) releaseByTag(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Drafts are not visible by tag, as on GitHub.
	rel := s.findRelease(r, func(rel *release) bool { return rel.Tag == r.PathValue("tag") && !rel.Draft })
	if rel == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
}

func (s *Server) releaseByID(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	rel := s.findRelease(r, func(rel *release) bool { return rel.id == id })
	if rel == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
}

func (s *Server) releaseAssets(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	rel := s.findRelease(r, func(rel *release) bool { return rel.id == id })
	if rel == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(r, rel)["assets"])
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	a := s.assets[id]
	var rel *release
	if a != nil {
		rel = s.findRelease(r, func(rel *release) bool { return rel.id == a.releaseID })
	}
	s.mu.Unlock()
	if a == nil || rel == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Header.Get("Accept") == "application/octet-stream" {
		http.Redirect(w, r, fmt.Sprintf("%s/download/%d/%s", base(r), a.id, a.Name), http.StatusFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.assetJSON(r, a))
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	a := s.assets[id]
	var data []byte
	truncate, fail := -1, false
	if a != nil {
		data, truncate = a.Data, a.truncate
		if a.failures > 0 {
			a.failures--
			fail = true
		}
	}
	s.mu.Unlock()
	switch {
	case a == nil || a.Name != r.PathValue("name"):
		http.NotFound(w, r)
		return
	case fail:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if truncate >= 0 && truncate < len(data) {
		data = data[:truncate]
	}
	w.Write(data)
}

// AddPackage publishes the Debian package at path as release tag of
// owner/repo, with a "<name>.sha256" checksum asset, as neco's release
// pipeline does.
func (s *Server) AddPackage(owner, repo, tag, path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(data)
	name := filepath.Base(path)
	return s.AddRelease(owner, repo, Release{Tag: tag, Assets: []Asset{
		{Name: name, Data: data},
		{Name: name + ".sha256", Data: []byte(hex.EncodeToString(sum[:]) + "  " + name + "\n")},
	}}), nil
}
