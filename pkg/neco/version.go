package neco

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadVersion reports a string that is not a release version.
var ErrBadVersion = errors.New("neco: malformed release version")

// Version is a release version YYYY.MM.DD-N: the release date and a build
// number. The zero Version is "no version".
type Version struct {
	Year, Month, Day int
	Build            int
}

// ParseVersion parses "YYYY.MM.DD-N". The date must be a real calendar date
// and N a decimal number without sign or leading zeros.
func ParseVersion(s string) (Version, error) {
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("%w %q: %s (want YYYY.MM.DD-N, e.g. 2025.03.10-12345)", ErrBadVersion, s, why)
	}
	date, build, ok := strings.Cut(s, "-")
	if !ok {
		return bad("no build number")
	}
	parts := strings.Split(date, ".")
	if len(parts) != 3 || len(parts[0]) != 4 || len(parts[1]) != 2 || len(parts[2]) != 2 {
		return bad("date is not YYYY.MM.DD")
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || !allDigits(p) {
			return bad("date is not YYYY.MM.DD")
		}
		nums[i] = n
	}
	t := time.Date(nums[0], time.Month(nums[1]), nums[2], 0, 0, 0, 0, time.UTC)
	if t.Year() != nums[0] || int(t.Month()) != nums[1] || t.Day() != nums[2] || nums[0] < 1 {
		return bad("no such date")
	}
	if build == "" || !allDigits(build) || (len(build) > 1 && build[0] == '0') || len(build) > 9 {
		return bad("build number is not a decimal number")
	}
	n, _ := strconv.Atoi(build)
	return Version{Year: nums[0], Month: nums[1], Day: nums[2], Build: n}, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// String formats v as YYYY.MM.DD-N, or "" for the zero Version.
func (v Version) String() string {
	if v.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d.%02d.%02d-%d", v.Year, v.Month, v.Day, v.Build)
}

// IsZero reports whether v is no version.
func (v Version) IsZero() bool { return v == Version{} }

// Compare orders versions by date, then by build number: -1, 0 or +1.
func (v Version) Compare(w Version) int {
	for _, d := range [][2]int{{v.Year, w.Year}, {v.Month, w.Month}, {v.Day, w.Day}, {v.Build, w.Build}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// Newer reports whether candidate should replace current: both parse and
// candidate sorts after current. A current that does not parse (a
// development build) is replaced by any release.
func Newer(candidate, current string) bool {
	c, err := ParseVersion(candidate)
	if err != nil {
		return false
	}
	cur, err := ParseVersion(current)
	if err != nil {
		return true
	}
	return c.Compare(cur) > 0
}

// TestVersion is what the updater reports as the latest release in the
// "test" environment: later than any real release.
const TestVersion = "9999.12.31-999999999"

// Tag prefixes of release tags on GitHub.
const (
	ReleaseTagPrefix = "release-" // staging and prod
	TestTagPrefix    = "test-"    // dev
)

// TagPrefix is the prefix of the release tags env follows.
func TagPrefix(env Env) string {
	if env == EnvDev {
		return TestTagPrefix
	}
	return ReleaseTagPrefix
}

// VersionFromTag extracts the version of a release tag with the given
// prefix, e.g. "release-2025.03.10-12345".
func VersionFromTag(tag, prefix string) (Version, error) {
	rest, ok := strings.CutPrefix(tag, prefix)
	if !ok {
		return Version{}, fmt.Errorf("%w: tag %q lacks prefix %q", ErrBadVersion, tag, prefix)
	}
	return ParseVersion(rest)
}

// DebName is the file name of the neco package of version v.
func DebName(v string) string { return "neco_" + v + "_amd64.deb" }
