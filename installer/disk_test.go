package installer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNewLayout(t *testing.T) {
	l := NewLayout(ESPSize, 1000*mib+1, []byte("inputs"))
	if l.ESPStart != mib || l.RootStart != mib+ESPSize || l.RootSize != 1001*mib || l.Size != l.RootStart+l.RootSize+mib {
		t.Errorf("layout %+v", l)
	}
	reUUID := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ids := map[string]bool{}
	for _, id := range []string{l.DiskUUID, l.ESPUUID, l.RootUUID, l.FSUUID} {
		if !reUUID.MatchString(id) {
			t.Errorf("%q is not a version 4 UUID", id)
		}
		ids[id] = true
	}
	if len(ids) != 4 || len(l.VolumeID) != 8 {
		t.Errorf("identifiers not distinct or volume id %q", l.VolumeID)
	}
	if again := NewLayout(ESPSize, 1000*mib+1, []byte("inputs")); again != l {
		t.Error("the same inputs gave another layout")
	}
	if other := NewLayout(ESPSize, 1000*mib+1, []byte("inputs2")); other.RootUUID == l.RootUUID {
		t.Error("other inputs gave the same root UUID")
	}
}

// TestSfdiskScript writes the table with the real sfdisk and reads it back.
func TestSfdiskScript(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sfdisk missing (make setup installs fdisk)")
		}
		t.Skip("sfdisk missing")
	}
	l := NewLayout(ESPSize, 300*mib, []byte("x"))
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, l.Size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", img)
	cmd.Stdin = strings.NewReader(l.SfdiskScript())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
				Name        string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	p := pt.PartitionTable
	if p.Label != "gpt" || !strings.EqualFold(p.ID, l.DiskUUID) || len(p.Partitions) != 2 {
		t.Fatalf("table %+v", p)
	}
	want := []struct {
		start, size int64
		typ, uuid   string
	}{{l.ESPStart, l.ESPSize, TypeESP, l.ESPUUID}, {l.RootStart, l.RootSize, TypeRoot, l.RootUUID}}
	for i, w := range want {
		g := p.Partitions[i]
		if g.Start*512 != w.start || g.Size*512 != w.size || !strings.EqualFold(g.Type, w.typ) || !strings.EqualFold(g.UUID, w.uuid) {
			t.Errorf("partition %d: %+v, want %+v", i+1, g, w)
		}
	}
}

func TestCopyIntoSparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 5*mib+100)
	copy(data[2*mib:], "hello")
	copy(data[5*mib:], "tail")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dst.Truncate(20 * mib)
	if err := copyInto(dst, 3*mib, 6*mib, src); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	dst.ReadAt(got, 3*mib)
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	var st unix.Stat_t
	unix.Fstat(int(dst.Fd()), &st)
	if st.Blocks*512 > 3*mib {
		t.Errorf("%d bytes allocated: the zeros were written", st.Blocks*512)
	}
	if err := copyInto(dst, 0, 5*mib, src); err == nil {
		t.Error("a file larger than its partition was copied")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "512m": 512 << 20, "100": 100} {
		if n, err := parseSize(in); err != nil || n != want {
			t.Errorf("%s: %d %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1.5G", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUsedInodes(t *testing.T) {
	dump := `Filesystem volume name:   neco-root
Inodes per group:         8


Group 0: (Blocks 0-32767) csum 0x1234 [ITABLE_ZEROED]
  Free inodes: 7-8
Group 1: (Blocks 32768-65535) csum 0x1 [INODE_UNINIT]
  Free inodes: 9-16
Group 2: (Blocks 65536-98303)
  Free inodes: 17, 19-20, 24
`
	got, err := UsedInodes(dump)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 2, 3, 4, 5, 6, 18, 21, 22, 23}
	if !slices.Equal(got, want) {
		t.Errorf("used %v, want %v", got, want)
	}
	for _, bad := range []string{"", "Inodes per group: 8\nGroup 0: x\n  Free inodes: 9-12\n", "Group 0: (x)\n  Free inodes: 1-2\n", "Inodes per group: x\n"} {
		if _, err := UsedInodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
