package nodeexec

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

const defaultPort = "22"

// CanonicalAddr returns a node address as host:port, the form Pool and
// HostKeyStore key by. addr is a host name or IP address, optionally with a
// port ("10.0.0.1", "10.0.0.1:2222", "node1", "fd00::1", "[fd00::1]:2222");
// the port is 22 when none is given. Host names are lower-cased and IP
// addresses written in their canonical form, so that one node has one key.
func CanonicalAddr(addr string) (string, error) {
	host, port := addr, defaultPort
	switch {
	case strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]"):
		host = addr[1 : len(addr)-1]
	case strings.HasPrefix(addr, "["), strings.Count(addr, ":") == 1:
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("address %q: %w", addr, err)
		}
		host, port = h, p
	}
	// More than one colon and no brackets: a bare IPv6 address.

	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || port[0] == '+' {
		return "", fmt.Errorf("address %q: bad port %q", addr, port)
	}
	h, err := canonicalHost(host)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	return net.JoinHostPort(h, strconv.FormatUint(n, 10)), nil
}

func canonicalHost(host string) (string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if !nameChars(ip.Zone()) {
			return "", fmt.Errorf("bad zone %q", ip.Zone())
		}
		return ip.String(), nil
	}
	if host == "" || !nameChars(host) {
		return "", fmt.Errorf("bad host %q", host)
	}
	return strings.ToLower(host), nil
}

// nameChars reports whether s has only the characters of host names and
// interface names.
func nameChars(s string) bool {
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '.', r == '_':
		default:
			return false
		}
	}
	return true
}

// forgetArg is how an operator names addr to ckecli: without the port
// when it is the default one.
func forgetArg(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != defaultPort {
		return addr
	}
	return host
}
