package neco

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // release-timezone must work on hosts without zoneinfo
)

// ErrBadConfig reports an unknown configuration key or an invalid value.
var ErrBadConfig = errors.New("neco: invalid configuration")

// Env selects which releases the updater follows.
type Env string

// Environments.
const (
	EnvNone    Env = "none"    // never update
	EnvTest    Env = "test"    // always the fixed TestVersion, no download
	EnvDev     Env = "dev"     // releases tagged test-*, pre-releases included
	EnvStaging Env = "staging" // releases tagged release-*, pre-releases included
	EnvProd    Env = "prod"    // GitHub's latest release (never a pre-release)
)

// Configuration keys, stored under config/ in etcd and set with
// `neco config set`.
const (
	KeyEnv                 = "env"
	KeyReleaseTime         = "release-time"
	KeyReleaseTimeZone     = "release-timezone"
	KeyCheckUpdateInterval = "check-update-interval"
	KeyWorkerTimeout       = "worker-timeout"
	KeyStepTimeout         = "step-timeout"
	KeyGitHubToken         = "github-token"
	KeyGitHubAPIURL        = "github-api-url"
	KeyGitHubRepo          = "github-repo"
	KeyRepairAfter         = "repair-after"
	KeyRepairLimit         = "repair-limit"
	KeyRepairWindow        = "repair-window"
	KeyRepairWait          = "repair-wait"
	KeyProxy               = "proxy"
)

// ConfigKey documents one configuration key.
type ConfigKey struct {
	Name    string
	Default string
	Help    string
	// Secret values are not echoed by `neco config get` without --show-secret.
	Secret   bool
	validate func(string) error
}

// ConfigKeys lists every key `neco config` accepts.
var ConfigKeys = []ConfigKey{
	{Name: KeyEnv, Default: string(EnvNone), Help: "which releases to follow: none, test, dev, staging or prod", validate: validateEnv},
	{Name: KeyReleaseTime, Default: "", Help: `cron expression (minute hour day-of-month month day-of-week) of the minutes in which a new release may start, e.g. "* 9-16 * * 1-5"; empty: any time`, validate: func(s string) error { _, err := ParseWindow(s); return err }},
	{Name: KeyReleaseTimeZone, Default: "UTC", Help: "IANA time zone of release-time, e.g. Asia/Tokyo", validate: func(s string) error { _, err := time.LoadLocation(s); return err }},
	{Name: KeyCheckUpdateInterval, Default: "1m", Help: "how often the updater asks GitHub for releases (at least 1s)", validate: durationAtLeast(time.Second)},
	{Name: KeyWorkerTimeout, Default: "60m", Help: "an update not completed by every worker this long after it started is stopped", validate: durationAtLeast(time.Second)},
	{Name: KeyStepTimeout, Default: "10m", Help: "longest time one update step may run on one boot server", validate: durationAtLeast(time.Second)},
	{Name: KeyGitHubToken, Default: "", Help: "GitHub token for the API (empty: anonymous)", Secret: true, validate: func(s string) error {
		if strings.ContainsAny(s, " \t\r\n") {
			return errors.New("contains white space")
		}
		return nil
	}},
	{Name: KeyGitHubAPIURL, Default: "https://api.github.com/", Help: "GitHub REST API base URL (GitHub Enterprise: https://HOST/api/v3/)", validate: validateHTTPURL},
	{Name: KeyGitHubRepo, Default: "openneco/neco", Help: "repository OWNER/NAME whose releases are followed", validate: validateRepo},
	{Name: KeyProxy, Default: "", Help: "HTTP proxy URL for GitHub (empty: direct)", validate: func(s string) error {
		if s == "" {
			return nil
		}
		return validateHTTPURL(s)
	}},
	{Name: KeyRepairAfter, Default: "0s", Help: "a machine unhealthy or unreachable this long is power-cycled once through its BMC (0s: never; see docs/repair.md)", validate: durationAtLeast(0)},
	{Name: KeyRepairLimit, Default: "1", Help: "at most this many power cycles by the repair loop within repair-window", validate: intAtLeast(1)},
	{Name: KeyRepairWindow, Default: "10m", Help: "the window of repair-limit", validate: durationAtLeast(time.Second)},
	{Name: KeyRepairWait, Default: "15m", Help: "how long a power-cycled machine has to become healthy before it is left for an operator", validate: durationAtLeast(time.Second)},
}

// LookupConfigKey finds a key by name.
func LookupConfigKey(name string) (ConfigKey, bool) {
	i := slices.IndexFunc(ConfigKeys, func(k ConfigKey) bool { return k.Name == name })
	if i < 0 {
		return ConfigKey{}, false
	}
	return ConfigKeys[i], true
}

// ValidateConfig checks one key and value.
func ValidateConfig(name, value string) error {
	k, ok := LookupConfigKey(name)
	if !ok {
		return fmt.Errorf("%w: unknown key %q", ErrBadConfig, name)
	}
	if err := k.validate(value); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrBadConfig, name, value, err)
	}
	return nil
}

func validateEnv(s string) error {
	switch Env(s) {
	case EnvNone, EnvTest, EnvDev, EnvStaging, EnvProd:
		return nil
	}
	return errors.New("want none, test, dev, staging or prod")
}

func durationAtLeast(lo time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration such as 30s, 5m or 1h")
		}
		if d < lo {
			return fmt.Errorf("must be at least %s", lo)
		}
		return nil
	}
}

func intAtLeast(lo int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not an integer")
		}
		if n < lo {
			return fmt.Errorf("must be at least %d", lo)
		}
		return nil
	}
}

func validateHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http(s) URL")
	}
	return nil
}

func validateRepo(s string) error {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") || strings.ContainsAny(s, " \t\r\n") {
		return errors.New("want OWNER/NAME")
	}
	return nil
}

// Config is the operator configuration with defaults applied and values
// parsed. Invalid stored values fall back to the default (and are listed in
// Invalid) so that one bad key cannot stop the daemons.
type Config struct {
	Env                 Env
	ReleaseWindow       Window
	ReleaseLocation     *time.Location
	CheckUpdateInterval time.Duration
	WorkerTimeout       time.Duration
	StepTimeout         time.Duration
	GitHubToken         string
	GitHubAPIURL        string
	GitHubOwner         string
	GitHubRepo          string
	Proxy               string
	// The repair loop's settings (pkg/repair); RepairAfter 0 turns it off.
	RepairAfter  time.Duration
	RepairLimit  int
	RepairWindow time.Duration
	RepairWait   time.Duration
	// Invalid names the stored keys that did not validate.
	Invalid []string
}

// ParseConfig builds a Config from the stored key/value pairs.
func ParseConfig(stored map[string]string) Config {
	val := func(name string) string {
		k, _ := LookupConfigKey(name)
		v, ok := stored[name]
		if !ok {
			return k.Default
		}
		if k.validate(v) != nil {
			return k.Default
		}
		return v
	}
	var c Config
	for name, v := range stored {
		if ValidateConfig(name, v) != nil {
			c.Invalid = append(c.Invalid, name)
		}
	}
	slices.Sort(c.Invalid)
	c.Env = Env(val(KeyEnv))
	c.ReleaseWindow, _ = ParseWindow(val(KeyReleaseTime))
	c.ReleaseLocation, _ = time.LoadLocation(val(KeyReleaseTimeZone))
	c.CheckUpdateInterval, _ = time.ParseDuration(val(KeyCheckUpdateInterval))
	c.WorkerTimeout, _ = time.ParseDuration(val(KeyWorkerTimeout))
	c.StepTimeout, _ = time.ParseDuration(val(KeyStepTimeout))
	c.GitHubToken = val(KeyGitHubToken)
	c.GitHubAPIURL = val(KeyGitHubAPIURL)
	c.GitHubOwner, c.GitHubRepo, _ = strings.Cut(val(KeyGitHubRepo), "/")
	c.Proxy = val(KeyProxy)
	c.RepairAfter, _ = time.ParseDuration(val(KeyRepairAfter))
	c.RepairLimit, _ = strconv.Atoi(val(KeyRepairLimit))
	c.RepairWindow, _ = time.ParseDuration(val(KeyRepairWindow))
	c.RepairWait, _ = time.ParseDuration(val(KeyRepairWait))
	return c
}

// InReleaseWindow reports whether a new release may start at t.
func (c Config) InReleaseWindow(t time.Time) bool {
	loc := c.ReleaseLocation
	if loc == nil {
		loc = time.UTC
	}
	return c.ReleaseWindow.Contains(t.In(loc))
}
