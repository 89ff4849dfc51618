package installer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
)

// GPT partition types.
const (
	TypeESP  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRoot = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" // root-x86-64
)

const (
	mib        = 1 << 20
	sectorSize = 512
)

// Layout is where the partitions of the disk image lie, and the
// identifiers that make it the same from build to build.
type Layout struct {
	Size      int64 // the whole image, bytes
	ESPStart  int64
	ESPSize   int64
	RootStart int64
	RootSize  int64
	DiskUUID  string
	ESPUUID   string
	RootUUID  string
	// FSUUID is the root file system's UUID, also its directory hash seed.
	FSUUID string
	// VolumeID is the ESP's FAT volume id (8 hex digits).
	VolumeID string
}

// NewLayout places an ESP of espSize and a root partition of rootSize
// (both rounded up to MiB) at 1 MiB alignment, with a MiB left at the end
// for the backup GPT. The identifiers derive from seed.
func NewLayout(espSize, rootSize int64, seed []byte) Layout {
	round := func(n int64) int64 { return (n + mib - 1) / mib * mib }
	l := Layout{ESPStart: mib, ESPSize: round(espSize), RootSize: round(rootSize)}
	l.RootStart = l.ESPStart + l.ESPSize
	l.Size = l.RootStart + l.RootSize + mib
	l.DiskUUID = uuidFrom(seed, "disk")
	l.ESPUUID = uuidFrom(seed, "esp")
	l.RootUUID = uuidFrom(seed, "root")
	l.FSUUID = uuidFrom(seed, "rootfs")
	l.VolumeID = strings.ReplaceAll(uuidFrom(seed, "volume")[:8], "-", "")
	return l
}

// uuidFrom makes a version-4-shaped UUID from a hash of seed and what.
func uuidFrom(seed []byte, what string) string {
	h := sha256.Sum256(append(append([]byte{}, seed...), what...))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// SfdiskScript is the partition table in sfdisk's input format.
func (l Layout) SfdiskScript() string {
	s := func(n int64) int64 { return n / sectorSize }
	return fmt.Sprintf(`label: gpt
label-id: %s
unit: sectors
first-lba: 2048
sector-size: %d

start=%d, size=%d, type=%s, uuid=%s, name="esp"
start=%d, size=%d, type=%s, uuid=%s, name="root"
`, l.DiskUUID, sectorSize, s(l.ESPStart), s(l.ESPSize), TypeESP, l.ESPUUID, s(l.RootStart), s(l.RootSize), TypeRoot, l.RootUUID)
}

// copyInto writes the file src at offset off of dst, leaving runs of
// zeros as holes (dst is a sparse file), and checks it fits in max bytes.
func copyInto(dst *os.File, off, max int64, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > max {
		return fmt.Errorf("installer: %s is %d bytes, its partition %d", src, st.Size(), max)
	}
	buf := make([]byte, mib)
	zero := make([]byte, mib)
	for pos := int64(0); ; {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
