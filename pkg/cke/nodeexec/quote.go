package nodeexec

import "strings"

// shellQuote quotes s as one word for a POSIX shell. Inside single quotes
// nothing is special; a single quote of s ends the quoted part, is escaped
// and starts a new one:
//
//	it's  →  'it'\''s'
//
// s must not contain NUL, which no shell word can hold.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
