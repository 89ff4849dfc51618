package server

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/sabakan/web"
)

// Defaults, those of the reference boot server.
const (
	DefaultHTTP       = "0.0.0.0:10080"
	DefaultHTTPS      = "0.0.0.0:10443"
	DefaultMetrics    = "0.0.0.0:10081"
	DefaultDHCPBind   = "0.0.0.0:10067"
	DefaultIPXEPath   = "/usr/lib/ipxe/ipxe.efi"
	DefaultDataDir    = "/var/lib/sabakan"
	DefaultServerCert = "/etc/sabakan/server.crt"
	DefaultServerKey  = "/etc/sabakan/server.key"
	DefaultEtcdPrefix = "/sabakan/"
	DefaultLeaderTTL  = "60s"
	// DefaultRegistrationTTL is not in the reference, which has no
	// multi-transaction registrations.
	DefaultRegistrationTTL = "10s"
	// DefaultBodyIdleTimeout: not in the reference.
	DefaultBodyIdleTimeout = "30s"
)

// DefaultAllowIPs may change resources unless configured otherwise.
var DefaultAllowIPs = []string{"127.0.0.1", "::1"}

// Config is the daemon's configuration. Its YAML keys (-config-file) and
// flags are those of the reference boot server, so that existing units and
// configuration files carry over.
type Config struct {
	HTTP              string           `json:"http"`
	HTTPS             string           `json:"https"`
	Metrics           string           `json:"metrics"`
	DHCPBind          string           `json:"dhcp-bind"`
	IPXEPath          string           `json:"ipxe-efi-path"`
	DataDir           string           `json:"data-dir"`
	AdvertiseURL      string           `json:"advertise-url"`
	AdvertiseURLHTTPS string           `json:"advertise-url-https"`
	AllowIPs          []string         `json:"allow-ips"`
	Etcd              *etcdutil.Config `json:"etcd"`
	ServerCert        string           `json:"server-cert"`
	ServerKey         string           `json:"server-key"`
	// Playground is accepted for compatibility; this server has no GraphQL
	// playground.
	Playground bool `json:"enable-playground,omitempty"`
	// LeaderTTL is the TTL of the etcd session of the janitor election
	// (registration tidying and audit expiry), as a Go duration.
	LeaderTTL string `json:"metrics-leader-election-ttl,omitempty"`
	// RegistrationTTL is the TTL of the lease a registration in progress
	// holds: how long the half-written registration of a killed server
	// stays before it is rolled back (not in the reference).
	RegistrationTTL string `json:"registration-ttl,omitempty"`
	// BodyIdleTimeout is how long a request body may pause: a client that
	// sends nothing for that long is answered 408 and disconnected (not in
	// the reference).
	BodyIdleTimeout string `json:"body-idle-timeout,omitempty"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		HTTP:            DefaultHTTP,
		HTTPS:           DefaultHTTPS,
		Metrics:         DefaultMetrics,
		DHCPBind:        DefaultDHCPBind,
		IPXEPath:        DefaultIPXEPath,
		DataDir:         DefaultDataDir,
		AllowIPs:        append([]string(nil), DefaultAllowIPs...),
		Etcd:            etcdutil.NewConfig(DefaultEtcdPrefix),
		ServerCert:      DefaultServerCert,
		ServerKey:       DefaultServerKey,
		LeaderTTL:       DefaultLeaderTTL,
		RegistrationTTL: DefaultRegistrationTTL,
		BodyIdleTimeout: DefaultBodyIdleTimeout,
	}
}

// AddFlags registers the reference's flags (single dash, standard flag
// package), bound to c.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTP, "http", c.HTTP, "<Listen IP>:<Port number> of the HTTP API")
	fs.StringVar(&c.HTTPS, "https", c.HTTPS, "<Listen IP>:<Port number> of the HTTPS API (disk encryption keys)")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "<Listen IP>:<Port number> of /metrics and /health")
	fs.StringVar(&c.DHCPBind, "dhcp-bind", c.DHCPBind, "<IP>:<Port> the DHCP server binds")
	fs.StringVar(&c.IPXEPath, "ipxe-efi-path", c.IPXEPath, "path to ipxe.efi")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory to store files")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", c.AdvertiseURL, "public URL of this server (required)")
	fs.StringVar(&c.AdvertiseURLHTTPS, "advertise-url-https", c.AdvertiseURLHTTPS, "public URL of this server's HTTPS API (required)")
	fs.Var(config.CommaList(&c.AllowIPs), "allow-ips", "comma-separated IPs or CIDRs allowed to change resources")
	fs.StringVar(&c.ServerCert, "server-cert", c.ServerCert, "path to the HTTPS server certificate (created self-signed if missing)")
	fs.StringVar(&c.ServerKey, "server-key", c.ServerKey, "path to the HTTPS server key (created if missing)")
	fs.BoolVar(&c.Playground, "enable-playground", c.Playground, "accepted for compatibility; there is no GraphQL playground")
	fs.StringVar(&c.LeaderTTL, "metrics-leader-election-ttl", c.LeaderTTL, "TTL of the janitor election's etcd session (Go duration)")
	fs.StringVar(&c.RegistrationTTL, "registration-ttl", c.RegistrationTTL, "how long a registration's records outlive a killed server before they are rolled back (Go duration)")
	fs.StringVar(&c.BodyIdleTimeout, "body-idle-timeout", c.BodyIdleTimeout, "how long a request body may pause before the request fails with 408 (Go duration)")
	c.Etcd.AddFlags(fs)
}

// Validate reports the first problem of the configuration.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{{"advertise-url", c.AdvertiseURL}, {"advertise-url-https", c.AdvertiseURLHTTPS}} {
		if u.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", u.name))
			continue
		}
		p, err := url.Parse(u.value)
		if err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute URL", u.name, u.value))
		}
	}
	if _, err := web.ParseAllowIPs(c.AllowIPs); err != nil {
		errs = append(errs, err)
	}
	if d, err := time.ParseDuration(c.LeaderTTL); err != nil || d < time.Second {
		errs = append(errs, fmt.Errorf("metrics-leader-election-ttl %q: want a duration of at least 1s", c.LeaderTTL))
	}
	if d, err := time.ParseDuration(c.RegistrationTTL); err != nil || d < 2*time.Second {
		errs = append(errs, fmt.Errorf("registration-ttl %q: want a duration of at least 2s", c.RegistrationTTL))
	}
	if d, err := time.ParseDuration(c.BodyIdleTimeout); err != nil || d < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("body-idle-timeout %q: want a duration of at least 100ms", c.BodyIdleTimeout))
	}
	if c.Etcd == nil {
		errs = append(errs, errors.New("etcd configuration missing"))
	} else if err := c.Etcd.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
