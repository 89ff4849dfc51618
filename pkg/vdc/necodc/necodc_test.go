package necodc

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/osimage"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/testutil"
)

func TestCompleted(t *testing.T) {
	req := &neco.UpdateRequest{ID: 7, Version: "2024.01.01-2", Servers: []int{0, 1, 2}}
	st := func(id int64, c neco.Cond) *neco.UpdateStatus {
		return &neco.UpdateStatus{RequestID: id, Cond: c, Step: 4}
	}
	tests := []struct {
		name    string
		s       CDStatus
		want    bool
		wantErr bool
	}{
		{"no request", CDStatus{}, false, false},
		{"other version", CDStatus{Request: &neco.UpdateRequest{Version: "2024.01.01-1"}}, false, false},
		{"all completed", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(7, neco.CondCompleted), "2": st(7, neco.CondCompleted)}}, true, false},
		{"one still running", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(7, neco.CondRunning), "2": st(7, neco.CondCompleted)}}, false, false},
		{"a status of an older request", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{
			"0": st(7, neco.CondCompleted), "1": st(6, neco.CondCompleted), "2": st(7, neco.CondCompleted)}}, false, false},
		{"aborted", CDStatus{Request: req, Statuses: map[string]*neco.UpdateStatus{"1": st(7, neco.CondAborted)}}, false, true},
		{"stopped", CDStatus{Request: &neco.UpdateRequest{Version: "2024.01.01-2", Stop: true}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Completed("2024.01.01-2")
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Completed = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteOSImage(t *testing.T) {
	if _, _, err := osimage.Kernel(); err != nil {
		testutil.Missing(t, "%v", err)
	}
	if err := osimage.CheckStatic(Busybox); err != nil {
		testutil.Missing(t, "%v", err)
	}
	out := filepath.Join(t.TempDir(), "images", "coreos", OSImageID+".tar")
	if err := WriteOSImage(out, Busybox); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Size == 0 {
			t.Errorf("%s is empty", hdr.Name)
		}
		names = append(names, hdr.Name)
	}
	if !slices.Equal(names, []string{content.KernelFile, content.InitrdFile}) {
		t.Errorf("image holds %v", names)
	}
}
