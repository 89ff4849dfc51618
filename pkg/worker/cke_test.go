package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ckestorage "github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
)

func TestShippedCKETemplate(t *testing.T) {
	tmpl, err := ReadCKETemplate("../../etc/" + CKETemplateFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Nodes) != 2 {
		t.Errorf("nodes: %+v", tmpl.Nodes)
	}
}

func TestUpdateCKETemplate(t *testing.T) {
	ctx := context.Background()
	st := ckestorage.New(etcdtest.Client(t))
	dir := t.TempDir()
	file := filepath.Join(dir, CKETemplateFile)
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("name: v2\nservice_subnet: 10.68.0.0/16\nnodes:\n- {user: root, control_plane: true}\n- {user: root}\n")

	// No template stored: the integration is not set up, nothing is.
	if err := updateCKETemplate(ctx, file, st); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.GetSabakanSettings(ctx); s.Template != nil {
		t.Fatalf("a template was stored: %+v", s.Template)
	}

	old, _ := ReadCKETemplate(file)
	old.Name = "v1"
	if err := st.PutSabakanTemplate(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := updateCKETemplate(ctx, file, st); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.GetSabakanSettings(ctx); s.Template.Name != "v2" {
		t.Errorf("template name %q, want the release's v2", s.Template.Name)
	}

	// A broken template in a release is an error, and the stored one stays.
	write("name: v3\nnodes: []\n")
	if err := updateCKETemplate(ctx, file, st); err == nil {
		t.Error("an invalid template was accepted")
	}
	if s, _ := st.GetSabakanSettings(ctx); s.Template.Name != "v2" {
		t.Errorf("template now %q", s.Template.Name)
	}
}
