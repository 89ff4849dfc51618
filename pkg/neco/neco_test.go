package neco

import (
	"errors"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Version
		ok   bool
	}{
		{"release", "2025.03.10-12345", Version{2025, 3, 10, 12345}, true},
		{"build zero", "2025.03.10-0", Version{2025, 3, 10, 0}, true},
		{"no build", "2025.03.10", Version{}, false},
		{"empty build", "2025.03.10-", Version{}, false},
		{"leading zero build", "2025.03.10-012", Version{}, false},
		{"signed build", "2025.03.10-+1", Version{}, false},
		{"short month", "2025.3.10-1", Version{}, false},
		{"no such day", "2025.02.30-1", Version{}, false},
		{"month 13", "2025.13.01-1", Version{}, false},
		{"dev build", "0.0.0-dev", Version{}, false},
		{"tag not stripped", "release-2025.03.10-1", Version{}, false},
		{"signed year", "+025.03.10-1", Version{}, false},
		{"huge build", "2025.03.10-99999999999", Version{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersion(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseVersion(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadVersion) {
				t.Errorf("err %v is not ErrBadVersion", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.ok && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		name, candidate, current string
		want                     bool
	}{
		{"later build same day", "2025.03.10-2", "2025.03.10-1", true},
		{"later day smaller build", "2025.03.11-1", "2025.03.10-99", true},
		{"build numbers compare numerically", "2025.03.10-10", "2025.03.10-9", true},
		{"same", "2025.03.10-1", "2025.03.10-1", false},
		{"older", "2025.03.09-5", "2025.03.10-1", false},
		{"any release beats a dev build", "2025.03.10-1", "0.0.0-dev", true},
		{"malformed candidate never", "2025.3.10-1", "0.0.0-dev", false},
		{"beats nothing", "2025.03.10-1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Newer(tt.candidate, tt.current); got != tt.want {
				t.Errorf("Newer(%q, %q) = %v, want %v", tt.candidate, tt.current, got, tt.want)
			}
		})
	}
}

func TestVersionFromTag(t *testing.T) {
	if v, err := VersionFromTag("release-2025.03.10-7", ReleaseTagPrefix); err != nil || v.String() != "2025.03.10-7" {
		t.Errorf("got %v, %v", v, err)
	}
	if _, err := VersionFromTag("test-2025.03.10-7", ReleaseTagPrefix); !errors.Is(err, ErrBadVersion) {
		t.Errorf("wrong prefix accepted: %v", err)
	}
	if TagPrefix(EnvDev) != TestTagPrefix || TagPrefix(EnvProd) != ReleaseTagPrefix {
		t.Error("TagPrefix")
	}
}

func TestWindow(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04 Mon", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name, expr, at string
		want           bool
	}{
		{"empty is always", "", "2025-03-10 03:00 Mon", true},
		{"weekday hours in", "* 9-16 * * 1-5", "2025-03-10 09:00 Mon", true},
		{"weekday hours end", "* 9-16 * * 1-5", "2025-03-10 16:59 Mon", true},
		{"weekday hours after", "* 9-16 * * 1-5", "2025-03-10 17:00 Mon", false},
		{"weekend", "* 9-16 * * 1-5", "2025-03-09 10:00 Sun", false},
		{"sunday as 7", "* * * * 7", "2025-03-09 10:00 Sun", true},
		{"exact minute", "30 15 * * *", "2025-03-10 15:30 Mon", true},
		{"exact minute miss", "30 15 * * *", "2025-03-10 15:31 Mon", false},
		{"step", "*/15 * * * *", "2025-03-10 15:45 Mon", true},
		{"step miss", "*/15 * * * *", "2025-03-10 15:46 Mon", false},
		{"list", "0,30 * * * *", "2025-03-10 15:30 Mon", true},
		{"dom or dow", "* * 1 * 1", "2025-03-10 15:30 Mon", true},
		{"dom or dow neither", "* * 1 * 2", "2025-03-10 15:30 Mon", false},
		{"month", "* * * 4 *", "2025-03-10 15:30 Mon", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Contains(at(tt.at)); got != tt.want {
				t.Errorf("%q contains %s = %v, want %v", tt.expr, tt.at, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "5-1 * * * *", "*/0 * * * *", "a * * * *", "* * * * 8", "1-2-3 * * * *", "-1 * * * *"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	tests := []struct {
		key, value string
		ok         bool
	}{
		{KeyEnv, "prod", true},
		{KeyEnv, "production", false},
		{KeyReleaseTime, "* 9-16 * * 1-5", true},
		{KeyReleaseTime, "tomorrow", false},
		{KeyReleaseTimeZone, "Asia/Tokyo", true},
		{KeyReleaseTimeZone, "Mars/Olympus", false},
		{KeyCheckUpdateInterval, "1s", true},
		{KeyCheckUpdateInterval, "10ms", false},
		{KeyCheckUpdateInterval, "often", false},
		{KeyWorkerTimeout, "-5m", false},
		{KeyGitHubAPIURL, "https://ghe.example.com/api/v3/", true},
		{KeyGitHubAPIURL, "ftp://x/", false},
		{KeyGitHubRepo, "openneco/neco", true},
		{KeyGitHubRepo, "neco", false},
		{KeyGitHubRepo, "a/b/c", false},
		{KeyGitHubToken, "ghp_abc", true},
		{KeyGitHubToken, "two words", false},
		{KeyProxy, "", true},
		{KeyProxy, "http://proxy:3128", true},
		{KeyProxy, "proxy:3128", false},
		{"no-such-key", "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			err := ValidateConfig(tt.key, tt.value)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Errorf("err %v is not ErrBadConfig", err)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	c := ParseConfig(map[string]string{KeyEnv: "staging", KeyWorkerTimeout: "bogus", KeyReleaseTimeZone: "Asia/Tokyo", KeyReleaseTime: "* 9 * * *", KeyGitHubRepo: "o/r"})
	if c.Env != EnvStaging || c.WorkerTimeout != time.Hour || c.CheckUpdateInterval != time.Minute || c.GitHubOwner != "o" || c.GitHubRepo != "r" {
		t.Errorf("got %+v", c)
	}
	if len(c.Invalid) != 1 || c.Invalid[0] != KeyWorkerTimeout {
		t.Errorf("Invalid = %v", c.Invalid)
	}
	// 00:30 UTC is 09:30 in Tokyo.
	if !c.InReleaseWindow(time.Date(2025, 3, 10, 0, 30, 0, 0, time.UTC)) || c.InReleaseWindow(time.Date(2025, 3, 10, 9, 30, 0, 0, time.UTC)) {
		t.Error("release window ignores the time zone")
	}
	if d := ParseConfig(nil); d.Env != EnvNone || !d.InReleaseWindow(time.Now()) {
		t.Errorf("defaults: %+v", d)
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"2025.03.10-12345", "0.0.0-dev", "2025.02.29-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Errorf("round trip %q → %q", s, v.String())
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"* 9-16 * * 1-5", "*/15 0,12 1 1-12/2 7", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		w.Contains(time.Date(2025, 3, 10, 9, 30, 0, 0, time.UTC))
	})
}
