package agent

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

func TestConfList(t *testing.T) {
	type list struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type   string `json:"type"`
			Socket string `json:"socket"`
		} `json:"plugins"`
	}
	parse := func(data []byte, err error) list {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var l list
		if err := json.Unmarshal(data, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// podnet alone speaks 1.1.0.
	l := parse(ConfList("/run/p.sock", filepath.Join(t.TempDir(), "portmap")))
	if l.CNIVersion != "1.1.0" || len(l.Plugins) != 1 || l.Plugins[0].Type != "podnet" || l.Plugins[0].Socket != "/run/p.sock" || l.Name != "podnet" {
		t.Errorf("without portmap: %+v", l)
	}

	// With Debian's portmap (CNI 1.0.0 at most), the list is 1.0.0.
	const portmap = "/usr/lib/cni/portmap"
	testutil.RequireFile(t, portmap)
	l = parse(ConfList("/run/p.sock", portmap))
	if len(l.Plugins) != 2 || l.Plugins[1].Type != "portmap" {
		t.Fatalf("with portmap: %+v", l)
	}
	if v := newestOf(portmap, "1.1.0", "1.0.0"); l.CNIVersion != v || v == "" {
		t.Errorf("with portmap: version %s, portmap's newest %q", l.CNIVersion, v)
	}
}
