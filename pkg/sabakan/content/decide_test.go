package content

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/openneco/neco/pkg/sabakan"
)

func TestDecide(t *testing.T) {
	busy := func(k string) bool { return k == "busy" }
	for _, tt := range []struct {
		name          string
		wanted, local []string
		fetch, remove []string
	}{
		{"in sync", []string{"1", "2"}, []string{"2", "1"}, nil, nil},
		{"catch up", []string{"1", "2", "3"}, []string{"1"}, []string{"2", "3"}, nil},
		{"deleted", []string{"2"}, []string{"1", "2"}, nil, []string{"1"}},
		{"upload in flight", nil, []string{"busy", "old"}, nil, []string{"old"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(tt.wanted, tt.local, busy)
			if !slices.Equal(p.Fetch, tt.fetch) || !slices.Equal(p.Remove, tt.remove) {
				t.Errorf("got %+v, want fetch %v remove %v", p, tt.fetch, tt.remove)
			}
		})
	}
}

func TestAddImage(t *testing.T) {
	var images []Image
	var deleted []string
	var err error
	for i := range 8 {
		images, deleted, err = addImage(images, deleted, Image{ID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := func() (r []string) {
		for _, i := range images {
			r = append(r, i.ID)
		}
		return
	}
	if !slices.Equal(ids(), []string{"3", "4", "5", "6", "7"}) || !slices.Equal(deleted, []string{"0", "1", "2"}) {
		t.Errorf("index %v deleted %v", ids(), deleted)
	}
	for _, id := range []string{"1", "7"} {
		if _, _, err := addImage(images, deleted, Image{ID: id}); !errors.Is(err, sabakan.ErrConflict) {
			t.Errorf("adding %s: %v, want conflict", id, err)
		}
	}
	for i := range 20 {
		deleted = rememberDeleted(deleted, fmt.Sprint("x", i))
	}
	if len(deleted) != MaxDeletedImages || deleted[9] != "x19" {
		t.Errorf("deleted list %v", deleted)
	}
}

func TestValidateKernelParams(t *testing.T) {
	for in, ok := range map[string]bool{
		" console=ttyS0 quiet\n": true, "a\tb": false, "ü": false, string(make([]byte, 5000)): false, "": true,
	} {
		if _, err := ValidateKernelParams(in); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", in, err, ok)
		}
	}
}

func FuzzExtractImage(f *testing.F) {
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		_, _, err := extractImage(bytes.NewReader(data), dir)
		if err != nil && !errors.Is(err, sabakan.ErrBadRequest) && !errors.Is(err, sabakan.ErrTooLarge) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
