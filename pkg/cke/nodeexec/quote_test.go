package nodeexec

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/testutil"
)

var quoteSeeds = []string{
	"", "plain", "with space", "it's", "''", "'", `"double"`, `back\slash`, "$HOME", "$(touch pwned)",
	"`id`", "new\nline", "tab\there", "-n", "--", "*?[a]", "~root", "a;b&c|d", "!", "#comment",
	"\xff\xfe invalid utf-8", "ünïcødé", "{a,b}", "<in >out", "%s%d",
}

// shellSays runs printf with word, quoted, as its argument in shell and
// returns what it printed.
func shellSays(t testing.TB, shell, word string) string {
	t.Helper()
	out, err := exec.Command(shell, "-c", "printf %s "+shellQuote(word)).Output()
	if err != nil {
		t.Fatalf("%s: %v", shell, err)
	}
	return string(out)
}

func TestShellQuote(t *testing.T) {
	shells := testutil.RequireCommands(t, "sh", "bash")
	for _, s := range quoteSeeds {
		for _, shell := range shells {
			if got := shellSays(t, shell, s); got != s {
				t.Errorf("%s: %q quoted as %s came out as %q", shell, s, shellQuote(s), got)
			}
		}
	}
}

func FuzzShellQuote(f *testing.F) {
	sh := testutil.RequireCommands(f, "sh")[0]
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// No argument can hold NUL; the kernel limits one argument.
		if strings.IndexByte(s, 0) >= 0 || len(s) > 100_000 {
			t.Skip()
		}
		if got := shellSays(t, sh, s); got != s {
			t.Errorf("%q quoted as %s came out as %q", s, shellQuote(s), got)
		}
	})
}
