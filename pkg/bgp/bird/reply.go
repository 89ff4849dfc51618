package bird

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Line is one line of a reply from BIRD's control socket.
type Line struct {
	// Code is the four-digit reply code (see BIRD's doc/reply_codes);
	// continuation lines carry the code of the line they continue.
	Code int
	Text string
}

// Reply is BIRD's whole answer to one command.
type Reply []Line

// Reply code classes.
const (
	codeWelcome      = 1
	codeConfigOK     = 20
	codeReconfigured = 3
)

// Err returns the first run-time (8xxx) or parse-time (9xxx) error of the
// reply as an *Error, or nil.
func (r Reply) Err() error {
	for i, l := range r {
		if l.Code >= 8000 {
			msg := []string{l.Text}
			for _, c := range r[i+1:] {
				if c.Code == l.Code {
					msg = append(msg, c.Text)
				}
			}
			return &Error{Code: l.Code, Message: strings.Join(msg, "\n")}
		}
	}
	return nil
}

// Has reports whether a line of the reply has code.
func (r Reply) Has(code int) bool {
	for _, l := range r {
		if l.Code == code {
			return true
		}
	}
	return false
}

// Texts returns the text of every line with code, in order.
func (r Reply) Texts(code int) []string {
	var out []string
	for _, l := range r {
		if l.Code == code {
			out = append(out, l.Text)
		}
	}
	return out
}

// Error is an error BIRD reported, for example a configuration it rejected
// (code 8002, "Configuration file error").
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("bird: %04d %s", e.Code, e.Message) }

// ErrMalformed is returned for bytes that are not BIRD's reply format.
var ErrMalformed = errors.New("bird: malformed reply")

// ParseLine parses one line of a reply. prev is the code of the previous
// line, used by continuation lines (" text"). final reports that the line
// ends the reply ("DDDD text" rather than "DDDD-text").
func ParseLine(s string, prev int) (l Line, final bool, err error) {
	switch {
	case strings.HasPrefix(s, " "):
		if prev == 0 {
			return Line{}, false, fmt.Errorf("%w: continuation %q without a preceding code", ErrMalformed, s)
		}
		return Line{Code: prev, Text: s[1:]}, false, nil
	case strings.HasPrefix(s, "+"):
		// A spontaneous printout (only after "echo" commands); not part
		// of the reply.
		return Line{Code: -1, Text: s[1:]}, false, nil
	case len(s) >= 5 && (s[4] == '-' || s[4] == ' '):
		code, err := strconv.Atoi(s[:4])
		if err != nil || code < 0 || s[0] == '+' || s[0] == '-' {
			return Line{}, false, fmt.Errorf("%w: bad code in %q", ErrMalformed, s)
		}
		return Line{Code: code, Text: s[5:]}, s[4] == ' ', nil
	case len(s) == 4:
		code, err := strconv.Atoi(s)
		if err != nil || s[0] == '+' || s[0] == '-' {
			return Line{}, false, fmt.Errorf("%w: bad code in %q", ErrMalformed, s)
		}
		return Line{Code: code}, true, nil
	}
	return Line{}, false, fmt.Errorf("%w: %q", ErrMalformed, s)
}
