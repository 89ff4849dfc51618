package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Keys under the sabakan prefix (/sabakan/ by default). Every key, its value
// and its writers are listed in docs/etcd.md.
const (
	// KeyVersion holds the schema version (pkg/etcdutil.EnsureSchema).
	KeyVersion = "version"
	// KeyIPAM holds the IPAMConfig as JSON.
	KeyIPAM = "ipam"
	// KeyDHCP holds the DHCPConfig as JSON.
	KeyDHCP = "dhcp"
	// KeyMachines + serial holds a machine record as JSON.
	KeyMachines = "machines/"
	// KeyNodeIndices + rack/index holds the serial occupying that slot; it is
	// created with its machine, so no two machines share an index (and thus an
	// address).
	KeyNodeIndices = "node-indices/"
	// KeyRegistrations + id holds a registration record of a POST /machines
	// in progress (bound to a lease) or committed but not yet tidied up.
	KeyRegistrations = "registrations/"
	// KeyCrypts + serial/path holds a disk encryption key.
	KeyCrypts = "crypts/"
	// KeyAudit + YYYYMMDD/id holds an audit entry.
	KeyAudit = "audit/"
	// KeyJanitor is the election of the server that tidies up registrations
	// and expires audit entries.
	KeyJanitor = "janitor"
)

// SchemaVersion is the version of the key layout this package writes.
const SchemaVersion = 1

func machineKey(serial string) string { return KeyMachines + serial }

func slotKey(rack, index uint) string { return fmt.Sprintf("%s%d/%d", KeyNodeIndices, rack, index) }

func registrationKey(id string) string { return KeyRegistrations + id }

func cryptPrefix(serial string) string { return KeyCrypts + serial + "/" }

func cryptKey(serial, path string) string { return cryptPrefix(serial) + path }

// auditDay is the key part of the UTC day of t.
func auditDay(t time.Time) string { return t.UTC().Format("20060102") }

// auditKey orders entries by day and time; the random suffix keeps entries
// written in the same nanosecond by different servers apart.
func auditKey(t time.Time) string {
	return fmt.Sprintf("%s%s/%016x%s", KeyAudit, auditDay(t), t.UnixNano(), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// under reports whether key is under prefix, returning the rest.
func under(key, prefix string) (string, bool) {
	if !strings.HasPrefix(key, prefix) {
		return "", false
	}
	return key[len(prefix):], true
}
