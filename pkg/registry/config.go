package registry

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Defaults. pkg/bootserver's Registry* constants name the same addresses for
// the programs that talk to the registry; a test keeps them equal.
const (
	DefaultPublic     = "0.0.0.0:5000"
	DefaultWrite      = "127.0.0.1:5001"
	DefaultMetrics    = "0.0.0.0:5002"
	DefaultStorageDir = "/var/lib/neco-registry"
	DefaultTLSCert    = "/etc/neco/registry.crt"
	DefaultTLSKey     = "/etc/neco/registry.key"
	// DefaultUploadTimeout bounds one request on the write listener: a blob
	// upload in one PUT or PATCH must be read within it.
	DefaultUploadTimeout = "30m"
	// DefaultShutdownTimeout bounds the drain of the requests in flight on
	// SIGTERM; debian/neco-registry.service's TimeoutStopSec leaves room
	// for it.
	DefaultShutdownTimeout = "30s"
)

// Config is the daemon's configuration: a YAML file (-config-file) whose
// keys are the flags' names; flags given explicitly override the file.
type Config struct {
	// Public is the read-only TLS listener nodes pull from.
	Public string `json:"public"`
	// Write is the plain HTTP listener pushes go through. It must be a
	// loopback address: only processes on the boot server may write.
	Write string `json:"write"`
	// Metrics serves /health and /metrics.
	Metrics string `json:"metrics"`
	// StorageDir holds blobs, manifests and uploads in progress.
	StorageDir string `json:"storage-dir"`
	// TLSCert and TLSKey are the public listener's certificate and key
	// (PEM); they are read again when the files change.
	TLSCert string `json:"tls-cert-file"`
	TLSKey  string `json:"tls-key-file"`
	// UploadTimeout bounds reading one request on the write listener (Go
	// duration).
	UploadTimeout string `json:"upload-timeout,omitempty"`
	// ShutdownTimeout bounds the drain of requests in flight on SIGTERM (Go
	// duration).
	ShutdownTimeout string `json:"shutdown-timeout,omitempty"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		Public:          DefaultPublic,
		Write:           DefaultWrite,
		Metrics:         DefaultMetrics,
		StorageDir:      DefaultStorageDir,
		TLSCert:         DefaultTLSCert,
		TLSKey:          DefaultTLSKey,
		UploadTimeout:   DefaultUploadTimeout,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// AddFlags registers the flags, bound to c.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Public, "public", c.Public, "<IP>:<port> of the read-only TLS listener nodes pull from")
	fs.StringVar(&c.Write, "write", c.Write, "<loopback IP>:<port> of the plain HTTP listener pushes go through")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "<IP>:<port> of /health and /metrics")
	fs.StringVar(&c.StorageDir, "storage-dir", c.StorageDir, "directory of blobs, manifests and uploads in progress")
	fs.StringVar(&c.TLSCert, "tls-cert-file", c.TLSCert, "PEM certificate of the public listener")
	fs.StringVar(&c.TLSKey, "tls-key-file", c.TLSKey, "PEM private key of the public listener")
	fs.StringVar(&c.UploadTimeout, "upload-timeout", c.UploadTimeout, "longest time to read one request on the write listener (Go duration)")
	fs.StringVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest drain of the requests in flight on SIGTERM (Go duration)")
}

// Validate reports every problem of the configuration that can be seen
// without touching the files it names (Run checks those).
func (c *Config) Validate() error {
	var errs []error
	type listener struct {
		key, host string
		port      int
	}
	var seen []listener
	for _, l := range []struct{ key, value string }{{"public", c.Public}, {"write", c.Write}, {"metrics", c.Metrics}} {
		host, port, err := splitAddr(l.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", l.key, l.value, err))
			continue
		}
		if l.key == "write" && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("write %q: the write listener must be on a loopback address (127.0.0.1 or ::1): anyone who reaches it can push", l.value))
		}
		for _, o := range seen {
			// Port 0 is a free port each; one port on two given
			// addresses is fine, not with every address.
			if port != 0 && port == o.port && (host == o.host || isAny(host) || isAny(o.host)) {
				errs = append(errs, fmt.Errorf("%s and %s both use port %d", o.key, l.key, port))
			}
		}
		seen = append(seen, listener{l.key, host, port})
	}
	if c.StorageDir == "" {
		errs = append(errs, errors.New("storage-dir is required"))
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		errs = append(errs, errors.New("tls-cert-file and tls-key-file are required: the public listener serves TLS only"))
	}
	for _, d := range []struct{ key, value string }{{"upload-timeout", c.UploadTimeout}, {"shutdown-timeout", c.ShutdownTimeout}} {
		if v, err := time.ParseDuration(d.value); err != nil || v < time.Second {
			errs = append(errs, fmt.Errorf("%s %q: want a duration of at least 1s", d.key, d.value))
		}
	}
	return errors.Join(errs...)
}

// splitAddr parses host:port; the host may be empty (every address) or an
// IP literal, the port a number 0-65535 (0: any free port).
func splitAddr(s string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, errors.New("want <IP>:<port>")
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("%q is not an IP address", host)
		}
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q out of range", p)
	}
	return host, port, nil
}

// isAny tells whether host means every address.
func isAny(host string) bool {
	a, err := netip.ParseAddr(host)
	return host == "" || err == nil && a.IsUnspecified()
}

// isLoopback tells whether host is a loopback IP literal; "" (every
// address) and names are not.
func isLoopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (c *Config) durations() (upload, shutdown time.Duration) {
	upload, _ = time.ParseDuration(c.UploadTimeout)
	shutdown, _ = time.ParseDuration(c.ShutdownTimeout)
	return upload, shutdown
}
