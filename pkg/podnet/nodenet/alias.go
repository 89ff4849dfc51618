package nodenet

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// aliasPrefix starts the alias (IFLA_IFALIAS) of every host veth this
// package creates. The full alias is
//
//	podnet:<pool>:<ip>:<containerID>:<ifName>
//
// and is what List reads back after a daemon restart.
const aliasPrefix = "podnet:"

// maxAliasLen is the longest alias the kernel keeps (IFALIASZ is 256 with
// the terminating NUL).
const maxAliasLen = 255

// maxIfNameLen is the longest interface name (IFNAMSIZ is 16 with the NUL).
const maxIfNameLen = 15

// HostVethName is the name of the host end of a pod's veth pair: "pn" and
// the first 11 hex digits of sha1(containerID + "/" + ifName), 13 characters
// that fit IFNAMSIZ. It is deterministic so that Teardown and Check find the
// interface from the CNI arguments alone.
func HostVethName(containerID, ifName string) string {
	sum := sha1.Sum([]byte(containerID + "/" + ifName))
	return "pn" + hex.EncodeToString(sum[:])[:11]
}

// isHostVethName reports whether name has HostVethName's form.
func isHostVethName(name string) bool {
	rest, ok := strings.CutPrefix(name, "pn")
	if !ok || len(rest) != 11 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// podAlias is what a host veth's alias records about its pod.
type podAlias struct {
	Pool        string
	IP          netip.Addr
	ContainerID string
	IfName      string
}

func (a podAlias) String() string {
	return aliasPrefix + a.Pool + ":" + a.IP.String() + ":" + a.ContainerID + ":" + a.IfName
}

// validate checks the fields so that String is parsed back into the same
// podAlias and fits IFALIASZ.
func (a podAlias) validate() error {
	var errs []error
	if err := validToken(a.Pool); err != nil {
		errs = append(errs, fmt.Errorf("pool %q: %w", a.Pool, err))
	}
	if !a.IP.Is4() {
		errs = append(errs, fmt.Errorf("pod address %s: not an IPv4 address", a.IP))
	}
	if err := validToken(a.ContainerID); err != nil {
		errs = append(errs, fmt.Errorf("container id %q: %w", a.ContainerID, err))
	}
	if err := validIfName(a.IfName); err != nil {
		errs = append(errs, fmt.Errorf("interface name %q: %w", a.IfName, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if n := len(a.String()); n > maxAliasLen {
		return fmt.Errorf("alias %q is %d bytes, over the kernel's %d", a.String(), n, maxAliasLen)
	}
	return nil
}

// parseAlias parses a host veth alias written by this package. It rejects
// anything String would not have produced from a valid podAlias.
func parseAlias(s string) (podAlias, error) {
	rest, ok := strings.CutPrefix(s, aliasPrefix)
	if !ok {
		return podAlias{}, fmt.Errorf("alias %q: no %q prefix", s, aliasPrefix)
	}
	f := strings.Split(rest, ":")
	if len(f) != 4 {
		return podAlias{}, fmt.Errorf("alias %q: want 4 fields after %q, have %d", s, aliasPrefix, len(f))
	}
	ip, err := netip.ParseAddr(f[1])
	if err != nil {
		return podAlias{}, fmt.Errorf("alias %q: %w", s, err)
	}
	a := podAlias{Pool: f[0], IP: ip, ContainerID: f[2], IfName: f[3]}
	if err := a.validate(); err != nil {
		return podAlias{}, fmt.Errorf("alias %q: %w", s, err)
	}
	if a.String() != s { // not canonical, e.g. "::ffff:10.0.0.1" parsed as IPv4 would not be
		return podAlias{}, fmt.Errorf("alias %q: not in canonical form", s)
	}
	return a, nil
}

// validToken accepts the characters the CNI specification allows in a
// container ID (alphanumerics, '-', '_', '.'); Kubernetes pool names are a
// subset. Neither may hold the alias separator ':'.
func validToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("character %q not allowed (only A-Z a-z 0-9 - _ .)", c)
		}
	}
	return nil
}

// validIfName follows the kernel's dev_valid_name, restricted to printable
// ASCII and without '%' (which the kernel would expand as a name template).
func validIfName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxIfNameLen:
		return fmt.Errorf("longer than %d bytes", maxIfNameLen)
	case s == "." || s == "..":
		return errors.New("reserved")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '%' {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
