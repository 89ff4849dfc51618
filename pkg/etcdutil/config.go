package etcdutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/openneco/neco/pkg/config"
)

// Defaults of Config.
const (
	DefaultTimeout        = "2s"
	DefaultRequestTimeout = "5s"
)

// DefaultEndpoints is where etcd is looked for unless configured.
var DefaultEndpoints = []string{"http://127.0.0.1:2379"}

// Config says how to reach etcd. Its JSON/YAML keys and flag names are those
// of cybozu-go/etcdutil, so existing configuration files and systemd units
// carry over unchanged.
type Config struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	// Timeout bounds dialing etcd.
	Timeout string `json:"timeout"`
	// RequestTimeout bounds every KV call that has no shorter deadline.
	RequestTimeout string `json:"request-timeout,omitempty"`

	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	TLSCAFile   string `json:"tls-ca-file,omitempty"`
	TLSCA       string `json:"tls-ca,omitempty"`
	TLSCertFile string `json:"tls-cert-file,omitempty"`
	TLSCert     string `json:"tls-cert,omitempty"`
	TLSKeyFile  string `json:"tls-key-file,omitempty"`
	TLSKey      string `json:"tls-key,omitempty"`
}

// NewConfig returns a Config with defaults and the given key prefix.
func NewConfig(prefix string) *Config {
	return &Config{
		Endpoints:      append([]string(nil), DefaultEndpoints...),
		Prefix:         prefix,
		Timeout:        DefaultTimeout,
		RequestTimeout: DefaultRequestTimeout,
	}
}

// AddFlags registers the -etcd-* flags of the standard flag package.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.Var(config.CommaList(&c.Endpoints), "etcd-endpoints", "comma-separated URLs of the etcd endpoints")
	fs.StringVar(&c.Prefix, "etcd-prefix", c.Prefix, "prefix of every etcd key")
	fs.StringVar(&c.Timeout, "etcd-timeout", c.Timeout, "timeout for dialing etcd")
	fs.StringVar(&c.RequestTimeout, "etcd-request-timeout", c.RequestTimeout, "timeout of each etcd request")
	fs.StringVar(&c.Username, "etcd-username", c.Username, "username for etcd authentication")
	fs.StringVar(&c.Password, "etcd-password", c.Password, "password for etcd authentication")
	fs.StringVar(&c.TLSCAFile, "etcd-tls-ca", c.TLSCAFile, "path to the CA bundle that verifies etcd servers")
	fs.StringVar(&c.TLSCertFile, "etcd-tls-cert", c.TLSCertFile, "path to the client certificate presented to etcd")
	fs.StringVar(&c.TLSKeyFile, "etcd-tls-key", c.TLSKeyFile, "path to the private key of the client certificate")
}

// AddPFlags registers the --etcd-* flags on a pflag (cobra) flag set.
func (c *Config) AddPFlags(fs *pflag.FlagSet) {
	gofs := flag.NewFlagSet("", flag.ContinueOnError)
	c.AddFlags(gofs)
	fs.AddGoFlagSet(gofs)
}

// Validate reports the first problem of the configuration.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("etcd: no endpoints configured")
	}
	for _, d := range []struct{ name, value string }{{"timeout", c.Timeout}, {"request-timeout", c.RequestTimeout}} {
		if d.value == "" {
			continue
		}
		if v, err := time.ParseDuration(d.value); err != nil || v <= 0 {
			return fmt.Errorf("etcd: invalid %s %q", d.name, d.value)
		}
	}
	if (c.TLSCertFile != "" || c.TLSCert != "") != (c.TLSKeyFile != "" || c.TLSKey != "") {
		return errors.New("etcd: a TLS client certificate needs its key, and the key its certificate")
	}
	return nil
}

func (c *Config) durations() (dial, request time.Duration) {
	dial, _ = time.ParseDuration(c.Timeout)
	if dial == 0 {
		dial, _ = time.ParseDuration(DefaultTimeout)
	}
	request, _ = time.ParseDuration(c.RequestTimeout)
	if request == 0 {
		request, _ = time.ParseDuration(DefaultRequestTimeout)
	}
	return dial, request
}

// tlsConfig returns nil when neither a CA nor a client certificate is configured.
func (c *Config) tlsConfig() (*tls.Config, error) {
	ca, err := pemOrFile(c.TLSCA, c.TLSCAFile)
	if err != nil {
		return nil, err
	}
	cert, err := pemOrFile(c.TLSCert, c.TLSCertFile)
	if err != nil {
		return nil, err
	}
	key, err := pemOrFile(c.TLSKey, c.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	if ca == nil && cert == nil {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("etcd: no certificate found in the TLS CA bundle")
		}
		cfg.RootCAs = pool
	}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("etcd: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func pemOrFile(inline, path string) ([]byte, error) {
	if inline != "" {
		return []byte(inline), nil
	}
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return data, nil
}
