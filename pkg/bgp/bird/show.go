package bird

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Protocol is one row of "show protocols".
type Protocol struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Table string `json:"table"`
	// State is the protocol's state: up, down, start, stop.
	State string `json:"state"`
	Since string `json:"since"`
	// Info is protocol specific; for BGP it starts with the BGP state
	// (Established, Active, Connect, Idle, Passive, OpenSent, ...).
	Info string `json:"info"`
}

// BGPState is the BGP state of a BGP protocol ("" for other protocols).
func (p Protocol) BGPState() string {
	if p.Proto != "BGP" {
		return ""
	}
	state, _, _ := strings.Cut(p.Info, " ")
	return state
}

// Reply codes of tables.
const (
	codeProtocolList = 1002
	codeBFDSessions  = 1020
	codeNoProtocols  = 8003
)

// splitSince takes the "since" column off the front of fields: one token
// ("14:08:23.679", "2024-01-02") or two for "iso long" formats
// ("2024-01-02 14:08:23").
func splitSince(fields []string) (since string, rest []string) {
	if len(fields) == 0 {
		return "", nil
	}
	if len(fields) >= 2 && isDate(fields[0]) && strings.Contains(fields[1], ":") {
		return fields[0] + " " + fields[1], fields[2:]
	}
	return fields[0], fields[1:]
}

func isDate(s string) bool {
	return len(s) == 10 && s[4] == '-' && s[7] == '-'
}

// ParseProtocols reads the rows of a "show protocols" reply.
func ParseProtocols(r Reply) ([]Protocol, error) {
	var out []Protocol
	for _, text := range r.Texts(codeProtocolList) {
		f := strings.Fields(text)
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: protocol row %q has %d fields, want at least 5", ErrMalformed, text, len(f))
		}
		since, rest := splitSince(f[4:])
		out = append(out, Protocol{
			Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: since,
			Info: strings.Join(rest, " "),
		})
	}
	return out, nil
}

// BFDSession is one row of "show bfd sessions".
type BFDSession struct {
	// Instance is the BFD protocol that runs the session.
	Instance  string     `json:"instance"`
	Address   netip.Addr `json:"address"`
	Interface string     `json:"interface"`
	// State is Up, Down, Init or AdminDown.
	State    string        `json:"state"`
	Since    string        `json:"since"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
}

func parseSeconds(s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 1e6 {
		return 0, fmt.Errorf("%w: bad interval %q", ErrMalformed, s)
	}
	return time.Duration(v * float64(time.Second)).Round(time.Microsecond), nil
}

// ParseBFDSessions reads the rows of a "show bfd sessions" reply.
func ParseBFDSessions(r Reply) ([]BFDSession, error) {
	var out []BFDSession
	instance := ""
	for _, text := range r.Texts(codeBFDSessions) {
		f := strings.Fields(text)
		switch {
		case len(f) == 0:
			continue
		case len(f) == 1 && strings.HasSuffix(f[0], ":"):
			instance = strings.TrimSuffix(f[0], ":")
			continue
		case f[0] == "IP":
			continue // the heading
		}
		if len(f) < 6 {
			return nil, fmt.Errorf("%w: BFD row %q has %d fields, want at least 6", ErrMalformed, text, len(f))
		}
		addr, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: BFD row %q: %v", ErrMalformed, text, err)
		}
		since, rest := splitSince(f[3:])
		if len(rest) != 2 {
			return nil, fmt.Errorf("%w: BFD row %q: want interval and timeout after the time", ErrMalformed, text)
		}
		interval, err := parseSeconds(rest[0])
		if err != nil {
			return nil, err
		}
		timeout, err := parseSeconds(rest[1])
		if err != nil {
			return nil, err
		}
		out = append(out, BFDSession{
			Instance: instance, Address: addr, Interface: f[1], State: f[2], Since: since,
			Interval: interval, Timeout: timeout,
		})
	}
	return out, nil
}

// Protocols returns BIRD's protocols.
func (c *Client) Protocols(ctx context.Context) ([]Protocol, error) {
	r, err := c.Do(ctx, "show protocols")
	if err != nil {
		return nil, err
	}
	return ParseProtocols(r)
}

// BFDSessions returns BIRD's BFD sessions.
func (c *Client) BFDSessions(ctx context.Context) ([]BFDSession, error) {
	r, err := c.Do(ctx, "show bfd sessions")
	var be *Error
	if errors.As(err, &be) && be.Code == codeNoProtocols {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseBFDSessions(r)
}
