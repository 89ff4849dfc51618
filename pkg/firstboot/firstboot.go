// Package firstboot gives a boot server installed from the neco image its
// identity at first boot: rack, index in the rack and serial, from a seed
// the operator supplies (a file on the EFI system partition, the kernel
// command line, the SMBIOS serial) rather than from the image. The
// identity is the bgp-node-agent's identity file; once written it is kept
// across boots, and a seed that is malformed or does not fit the site's
// IPAM writes nothing.
package firstboot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/sabakan"
)

// ErrInvalidSeed marks a seed that cannot give an identity.
var ErrInvalidSeed = errors.New("invalid seed")

// Seed is what the operator says about one boot server. Every field may
// come from the seed file; Rack, Index, Serial and Hostname also from the
// kernel command line (neco.rack=, neco.index=, neco.serial=,
// neco.hostname=), which wins.
type Seed struct {
	// Rack is the server's rack, which is also its logical rack number in
	// neco setup. Required.
	Rack *uint `json:"rack,omitempty"`
	// Index is the server's index in the rack; the IPAM's
	// node-index-offset (the boot servers' index) when unset.
	Index *uint `json:"index-in-rack,omitempty"`
	// Serial overrides the SMBIOS serial.
	Serial string `json:"serial,omitempty"`
	// Hostname is boot-<rack> when unset.
	Hostname string `json:"hostname,omitempty"`
	// SSHAuthorizedKeys are added to the operator's authorized keys.
	SSHAuthorizedKeys []string `json:"ssh-authorized-keys,omitempty"`
}

// ParseSeedFile reads a seed file (YAML or JSON). Unknown keys are
// errors: a misspelt key would otherwise be silently ignored.
func ParseSeedFile(data []byte) (Seed, error) {
	var s Seed
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return Seed{}, fmt.Errorf("%w: %v", ErrInvalidSeed, err)
	}
	return s, nil
}

// ParseCmdline reads the neco.* parameters of a kernel command line.
// Other parameters are ignored; an unknown neco.* parameter or a bad
// number is an error.
func ParseCmdline(cmdline string) (Seed, error) {
	var s Seed
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(k, "neco.") {
			continue
		}
		switch k {
		case "neco.rack", "neco.index":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return Seed{}, fmt.Errorf("%w: kernel command line %s: %q is not a number", ErrInvalidSeed, k, v)
			}
			u := uint(n)
			if k == "neco.rack" {
				s.Rack = &u
			} else {
				s.Index = &u
			}
		case "neco.serial":
			s.Serial = v
		case "neco.hostname":
			s.Hostname = v
		default:
			return Seed{}, fmt.Errorf("%w: kernel command line: unknown parameter %s (want neco.rack, neco.index, neco.serial or neco.hostname)", ErrInvalidSeed, k)
		}
	}
	return s, nil
}

// Merge lays over on base: the set fields of over win; keys are added.
func Merge(base, over Seed) Seed {
	if over.Rack != nil {
		base.Rack = over.Rack
	}
	if over.Index != nil {
		base.Index = over.Index
	}
	if over.Serial != "" {
		base.Serial = over.Serial
	}
	if over.Hostname != "" {
		base.Hostname = over.Hostname
	}
	base.SSHAuthorizedKeys = append(append([]string{}, base.SSHAuthorizedKeys...), over.SSHAuthorizedKeys...)
	return base
}

// Identity is what a seed resolves to.
type Identity struct {
	Hostname string
	// Source is the bgp-node-agent's identity file: the machine (role
	// boot) and the site's IPAM.
	Source bgp.Source
	// Node is the node address the agent will put on node0.
	Node string
	// SSHAuthorizedKeys are the seed's keys, checked.
	SSHAuthorizedKeys []string
}

var reHostname = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// reKey is an OpenSSH public key line: options are not accepted.
var reKey = regexp.MustCompile(`^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]*)?$`)

// Resolve checks a seed against the site's IPAM and gives the identity.
// smbiosSerial is used when the seed has no serial.
func Resolve(s Seed, smbiosSerial string, ipam sabakan.IPAMConfig) (*Identity, error) {
	if s.Rack == nil {
		return nil, fmt.Errorf("%w: no rack (set rack in the seed file or neco.rack= on the kernel command line)", ErrInvalidSeed)
	}
	serial := s.Serial
	if serial == "" {
		serial = strings.TrimSpace(smbiosSerial)
	}
	if serial == "" {
		return nil, fmt.Errorf("%w: no serial: the firmware has none (SMBIOS) and the seed sets none", ErrInvalidSeed)
	}
	if !sabakan.IsValidSerial(serial) {
		return nil, fmt.Errorf("%w: serial %q: want 1-%d printable ASCII characters without '/' or spaces", ErrInvalidSeed, serial, sabakan.MaxSerialLength)
	}
	index := ipam.NodeIndexOffset
	if s.Index != nil {
		index = *s.Index
	}
	host := s.Hostname
	if host == "" {
		host = fmt.Sprintf("boot-%d", *s.Rack)
	}
	if !reHostname.MatchString(host) {
		return nil, fmt.Errorf("%w: hostname %q: want lower-case letters, digits and '-', at most 63", ErrInvalidSeed, host)
	}
	for i, k := range s.SSHAuthorizedKeys {
		if !reKey.MatchString(strings.TrimSpace(k)) {
			return nil, fmt.Errorf("%w: ssh-authorized-keys[%d] is not an OpenSSH public key line (type, base64, comment; no options)", ErrInvalidSeed, i)
		}
	}
	src := bgp.Source{IPAM: ipam, Machine: sabakan.Machine{Spec: sabakan.MachineSpec{
		Serial: serial, Rack: *s.Rack, IndexInRack: index, Role: sabakan.RoleBoot}}}
	id, err := src.Identity(bgp.DefaultASPlan())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSeed, err)
	}
	keys := make([]string, len(s.SSHAuthorizedKeys))
	for i, k := range s.SSHAuthorizedKeys {
		keys[i] = strings.TrimSpace(k)
	}
	return &Identity{Hostname: host, Source: src, Node: id.Node.String(), SSHAuthorizedKeys: keys}, nil
}

// IdentityFile is the agent's identity file as Apply writes it.
func (id *Identity) IdentityFile() []byte {
	b, _ := json.MarshalIndent(id.Source, "", "  ")
	return append(b, '\n')
}

// Same tells whether an identity file already written says the same as id
// about who the server is (serial, rack, index).
func (id *Identity) Same(existing *bgp.Source) bool {
	a, b := existing.Machine.Spec, id.Source.Machine.Spec
	return a.Serial == b.Serial && a.Rack == b.Rack && a.IndexInRack == b.IndexInRack
}

// ParseIdentityFile reads an identity file written before.
func ParseIdentityFile(data []byte) (*bgp.Source, error) {
	var src bgp.Source
	if err := yaml.UnmarshalStrict(data, &src); err != nil {
		return nil, err
	}
	return &src, nil
}
