package firstboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/sabakan"
)

// Paths are where Apply reads the seed and writes the identity. The image
// uses Default; tests point them into a directory.
type Paths struct {
	// SeedFile is the seed on the EFI system partition; it may be absent.
	SeedFile string
	// Cmdline is the kernel command line.
	Cmdline string
	// SMBIOSSerial is the firmware's system serial number.
	SMBIOSSerial string
	// IPAM is the site's IPAM configuration, put in the image at build.
	IPAM string
	// Identity is the bgp-node-agent's identity file; its presence means
	// the identity was applied.
	Identity string
	// Hostname is /etc/hostname.
	Hostname string
	// AuthorizedKeys is the operator's authorized_keys; the seed's keys
	// are added, owned by whoever owns its directory.
	AuthorizedKeys string
}

// Default are the paths in an installed boot server.
func Default() Paths {
	return Paths{
		SeedFile:       "/boot/efi/neco/seed.yml",
		Cmdline:        "/proc/cmdline",
		SMBIOSSerial:   "/sys/class/dmi/id/product_serial",
		IPAM:           "/etc/neco/ipam.json",
		Identity:       "/etc/neco/identity.json",
		Hostname:       "/etc/hostname",
		AuthorizedKeys: "/home/neco/.ssh/authorized_keys",
	}
}

// Result tells what Apply did.
type Result struct {
	// Applied is true when this call wrote the identity.
	Applied bool `json:"applied"`
	// Identity is the server's identity, new or kept.
	Serial   string `json:"serial"`
	Rack     uint   `json:"rack"`
	Index    uint   `json:"index-in-rack"`
	Node     string `json:"node-address"`
	Hostname string `json:"hostname"`
	// Warning is set when the seed now says something else than the kept
	// identity, or cannot be read any more: the identity stays.
	Warning string `json:"warning,omitempty"`
}

// ReadSeed reads and merges the seed: the file (if present), then the
// kernel command line. The SMBIOS serial is returned beside it.
func ReadSeed(p Paths) (Seed, string, error) {
	var s Seed
	data, err := os.ReadFile(p.SeedFile)
	switch {
	case err == nil:
		s, err = ParseSeedFile(data)
		if err != nil {
			return Seed{}, "", fmt.Errorf("seed file %s: %w", p.SeedFile, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Seed{}, "", fmt.Errorf("seed file: %w", err)
	}
	if p.Cmdline != "" {
		data, err := os.ReadFile(p.Cmdline)
		if err != nil {
			return Seed{}, "", fmt.Errorf("kernel command line: %w", err)
		}
		over, err := ParseCmdline(string(data))
		if err != nil {
			return Seed{}, "", err
		}
		s = Merge(s, over)
	}
	var serial string
	if p.SMBIOSSerial != "" {
		data, _ := os.ReadFile(p.SMBIOSSerial)
		serial = strings.TrimSpace(string(data))
	}
	return s, serial, nil
}

func readIPAM(path string) (sabakan.IPAMConfig, error) {
	var ipam sabakan.IPAMConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return ipam, fmt.Errorf("the site's IPAM: %w", err)
	}
	if err := json.Unmarshal(data, &ipam); err != nil {
		return ipam, fmt.Errorf("the site's IPAM %s: %w", path, err)
	}
	return ipam, nil
}

// Apply gives the server its identity, once. When the identity file
// exists it is kept whatever the seed says now (a different seed is a
// warning); otherwise the seed is read and checked first, and only then
// are the host name, the operator's keys and last the identity file
// written, each atomically. A bad seed returns an error wrapping
// ErrInvalidSeed and writes nothing.
func Apply(p Paths) (*Result, error) {
	if data, err := os.ReadFile(p.Identity); err == nil {
		return keep(p, data)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ipam, err := readIPAM(p.IPAM)
	if err != nil {
		return nil, err
	}
	seed, serial, err := ReadSeed(p)
	if err != nil {
		return nil, err
	}
	id, err := Resolve(seed, serial, ipam)
	if err != nil {
		return nil, err
	}
	if err := fileutil.WriteAtomic(p.Hostname, []byte(id.Hostname+"\n"), 0o644); err != nil {
		return nil, err
	}
	if len(id.SSHAuthorizedKeys) > 0 {
		if err := addKeys(p.AuthorizedKeys, id.SSHAuthorizedKeys); err != nil {
			return nil, err
		}
	}
	if err := fileutil.WriteAtomic(p.Identity, id.IdentityFile(), 0o644); err != nil {
		return nil, err
	}
	spec := id.Source.Machine.Spec
	return &Result{Applied: true, Serial: spec.Serial, Rack: spec.Rack, Index: spec.IndexInRack, Node: id.Node, Hostname: id.Hostname}, nil
}

func keep(p Paths, data []byte) (*Result, error) {
	src, err := ParseIdentityFile(data)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w (remove it to apply the seed again)", p.Identity, err)
	}
	host, _ := os.ReadFile(p.Hostname)
	spec := src.Machine.Spec
	r := &Result{Serial: spec.Serial, Rack: spec.Rack, Index: spec.IndexInRack, Hostname: strings.TrimSpace(string(host))}
	if a := src.Machine.Spec.IPv4; len(a) > 0 {
		r.Node = a[0]
	} else if addrs := src.IPAM.NodeAddresses(spec.Rack, spec.IndexInRack); len(addrs) > 0 {
		r.Node = addrs[0].String()
	}
	seed, serial, err := ReadSeed(p)
	if err != nil {
		r.Warning = fmt.Sprintf("the seed cannot be read (%v); the identity applied at first boot is kept", err)
		return r, nil
	}
	if seed.Rack == nil {
		return r, nil
	}
	id, err := Resolve(seed, serial, src.IPAM)
	if err != nil {
		r.Warning = fmt.Sprintf("the seed is invalid (%v); the identity applied at first boot is kept", err)
	} else if !id.Same(src) {
		n := id.Source.Machine.Spec
		r.Warning = fmt.Sprintf("the seed now says serial %s, rack %d, index %d; the identity applied at first boot is kept (reinstall to change it)", n.Serial, n.Rack, n.IndexInRack)
	}
	return r, nil
}

// addKeys adds keys missing from the authorized_keys file, owned by the
// owner of its directory (the operator's ~/.ssh, made at build).
func addKeys(path string, keys []string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("authorized keys: %w", err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(old), "\n"), "\n")
	if len(old) == 0 {
		lines = nil
	}
	for _, k := range keys {
		if !slices.Contains(lines, k) {
			lines = append(lines, k)
		}
	}
	if err := fileutil.WriteAtomic(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return os.Chown(path, int(sys.Uid), int(sys.Gid))
	}
	return nil
}
