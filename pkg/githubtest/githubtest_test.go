package githubtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandlerOnOwnListener: the handler works on any listener, with links
// built from the request's Host, and AddPackage publishes a checksum.
func TestHandlerOnOwnListener(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	p := filepath.Join(t.TempDir(), "neco_2025.03.10-1_amd64.deb")
	os.WriteFile(p, []byte("package"), 0o644)
	if _, err := s.AddPackage("o", "r", "release-2025.03.10-1", p); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/api/v3/repos/o/r/releases/latest")
	if err != nil {
		t.Fatal(err)
	}
	var rel struct {
		Tag    string `json:"tag_name"`
		Assets []struct {
			Name string `json:"name"`
			URL  string `json:"browser_download_url"`
		} `json:"assets"`
	}
	json.NewDecoder(resp.Body).Decode(&rel)
	resp.Body.Close()
	if rel.Tag != "release-2025.03.10-1" || len(rel.Assets) != 2 || !strings.HasPrefix(rel.Assets[0].URL, ts.URL+"/download/") {
		t.Fatalf("latest = %+v", rel)
	}
	resp, err = http.Get(rel.Assets[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(strings.TrimSpace(string(sum)), "  neco_2025.03.10-1_amd64.deb") {
		t.Errorf("checksum asset = %q", sum)
	}
	if resp, _ := http.Get(ts.URL + "/api/v3/repos/o/r/releases/tags/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown tag: %d", resp.StatusCode)
	}
}
