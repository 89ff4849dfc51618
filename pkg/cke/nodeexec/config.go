package nodeexec

import (
	"errors"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values of Config's durations.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
)

// Config is how the engine logs in to nodes.
type Config struct {
	// User is the login user on the nodes.
	User string
	// Signer is the private key the engine logs in with.
	Signer ssh.Signer
	// HostKeys holds the pinned host keys; required.
	HostKeys HostKeyStore
	// DialTimeout bounds the TCP connection, the SSH handshake and the
	// authentication; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// CommandTimeout bounds each Run, WriteFile and Install; zero leaves
	// them bounded only by their context.
	CommandTimeout time.Duration
	// KeepAlive is the interval between keepalive requests on a
	// connection; a request still unanswered after another interval
	// closes the connection, so a dead node is noticed even while no
	// command runs. DefaultKeepAlive when zero; negative disables them.
	KeepAlive time.Duration
}

func (c *Config) check() error {
	switch {
	case c.User == "":
		return errors.New("config: no user")
	case c.Signer == nil:
		return errors.New("config: no signer")
	case c.HostKeys == nil:
		return errors.New("config: no host key store")
	}
	return nil
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

func (c *Config) keepAlive() time.Duration {
	if c.KeepAlive == 0 {
		return DefaultKeepAlive
	}
	return c.KeepAlive
}
