// Package bmc is the client of machines' BMCs that `neco power` and the
// repair loop use: it reads a machine's power state and resets it through
// Redfish, with the gofish library, the same way for a real BMC and for a
// virtual data center's virtual BMC (pkg/redfish).
//
// Each call is one short conversation: log in (a Redfish session), find the
// BMC's one computer system, act, log out. Nothing is retried: callers decide
// what a failure means, with errors.Is on the sentinel errors below.
package bmc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/openneco/neco/pkg/redfish"
)

// Errors callers tell apart with errors.Is. The errors returned wrap one of
// them where it applies, and always name the BMC's address.
var (
	// ErrUnauthorized is the BMC refusing the credentials (HTTP 401 or 403).
	ErrUnauthorized = errors.New("wrong BMC credentials")
	// ErrUnreachable is a BMC that could not be connected to or did not
	// answer within the Client's Timeout.
	ErrUnreachable = errors.New("BMC unreachable")
	// ErrNotSupported is a reset type the BMC does not allow.
	ErrNotSupported = errors.New("not supported by the BMC")
)

// DefaultTimeout bounds each operation of a Client without a Timeout.
const DefaultTimeout = 10 * time.Second

const redacted = "REDACTED"

// Credentials are a BMC account. Printing or logging them never shows the
// password.
type Credentials struct {
	Username string
	Password string
}

// Validate reports missing credentials.
func (c Credentials) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("bmc: %w", err)
	}
	return nil
}

func (c Credentials) validate() error {
	switch {
	case c.Username == "":
		return errors.New("no BMC user name")
	case c.Password == "":
		return errors.New("no BMC password")
	}
	return nil
}

func (c Credentials) maskedPassword() string {
	if c.Password == "" {
		return ""
	}
	return redacted
}

// String returns "username:REDACTED".
func (c Credentials) String() string { return c.Username + ":" + c.maskedPassword() }

// GoString is for %#v.
func (c Credentials) GoString() string {
	return fmt.Sprintf("bmc.Credentials{Username:%q, Password:%q}", c.Username, c.maskedPassword())
}

// LogValue is for log/slog.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", c.maskedPassword()))
}

// Client talks to BMCs over HTTPS. Its zero value with Credentials set is
// ready to use; it may be used concurrently.
type Client struct {
	Credentials Credentials
	// Timeout bounds each operation, connecting included; default
	// DefaultTimeout. Logging out afterwards has a Timeout of its own.
	Timeout time.Duration
	// RootCAs verifies the BMCs' certificates, which must then name the
	// address the client is given. When nil, certificates are NOT verified:
	// BMCs come with self-signed certificates, and the management network
	// they are on is trusted instead.
	RootCAs *x509.CertPool
	// Port is the BMCs' HTTPS port; default 443.
	Port int
}

// PowerState returns the power state of the machine of the BMC at addr (a
// host name or IP address, without a port).
func (c *Client) PowerState(ctx context.Context, addr string) (redfish.PowerState, error) {
	var ps redfish.PowerState
	err := c.do(ctx, addr, "power state", func(sys *schemas.ComputerSystem) error {
		if sys.PowerState == "" {
			return errors.New("the system reports no power state")
		}
		ps = redfish.PowerState(sys.PowerState)
		return nil
	})
	return ps, err
}

// Reset resets the machine of the BMC at addr as t says, once t is checked
// against the reset types the system allows (ErrNotSupported; a system that
// announces none is sent t anyway, as gofish does). It returns when the BMC
// has accepted the request.
func (c *Client) Reset(ctx context.Context, addr string, t redfish.ResetType) error {
	if t == "" {
		return fmt.Errorf("bmc: reset at %s: no reset type", addr)
	}
	return c.do(ctx, addr, "reset "+string(t), func(sys *schemas.ComputerSystem) error {
		allowed, err := sys.GetSupportedResetTypes()
		if err != nil {
			return err
		}
		if len(allowed) > 0 && !slices.Contains(allowed, schemas.ResetType(t)) {
			names := make([]string, len(allowed))
			for i, a := range allowed {
				names[i] = string(a)
			}
			return fmt.Errorf("%w: reset type %s (the system allows %s)", ErrNotSupported, t, strings.Join(names, ", "))
		}
		_, err = sys.Reset(schemas.ResetType(t))
		return err
	})
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// do logs in to the BMC at addr, runs act on its one system and logs out.
func (c *Client) do(ctx context.Context, addr, op string, act func(*schemas.ComputerSystem) error) error {
	hostPort, err := c.hostPort(addr)
	if err != nil {
		return fmt.Errorf("bmc: %s: %w", op, err)
	}
	err = c.Credentials.validate()
	if err == nil {
		err = c.session(ctx, hostPort, act)
	}
	if err != nil {
		return fmt.Errorf("bmc: %s at %s: %w", op, hostPort, err)
	}
	return nil
}

func (c *Client) session(ctx context.Context, hostPort string, act func(*schemas.ComputerSystem) error) error {
	timeout := c.timeout()
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := c.httpClient(timeout)
	defer hc.CloseIdleConnections()
	api, err := gofish.ConnectContext(opCtx, gofish.ClientConfig{
		Endpoint:          "https://" + hostPort,
		Username:          c.Credentials.Username,
		Password:          c.Credentials.Password,
		HTTPClient:        hc,
		NoModifyTransport: true,
		ReuseConnections:  true,
	})
	if err != nil {
		return classify(err)
	}
	defer func() {
		// Even when ctx is done: a session left behind takes one of the
		// BMC's few until it expires. gofish does not report failures here.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		api.WithContext(lctx).Logout()
	}()
	systems, err := api.Service.Systems()
	if err != nil {
		return classify(err)
	}
	if len(systems) != 1 {
		return fmt.Errorf("the BMC serves %d computer systems, not 1", len(systems))
	}
	return classify(act(systems[0]))
}

// hostPort checks addr and adds the port, without any I/O.
func (c *Client) hostPort(addr string) (string, error) {
	if strings.TrimSpace(addr) == "" {
		return "", errors.New("no BMC address")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return "", fmt.Errorf("BMC address %q has a port: set Client.Port", addr)
	}
	port := c.Port
	if port == 0 {
		port = 443
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("BMC port %d out of range", port)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	u, err := url.Parse("https://" + hp)
	if err != nil || u.Host != hp || strings.ContainsAny(host, "/?#@[]% \t\r\n") {
		return "", fmt.Errorf("BMC address %q is not a host name or IP address", addr)
	}
	return hp, nil
}

func (c *Client) httpClient(timeout time.Duration) *http.Client {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}
	if c.RootCAs == nil {
		tlsConfig.InsecureSkipVerify = true // see Client.RootCAs
	}
	return &http.Client{
		Transport: &http.Transport{
			// No Proxy: BMCs are on the management network.
			DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   1,
			IdleConnTimeout:       timeout,
		},
		Timeout: timeout,
		// A redirect would carry the session token (a header net/http does
		// not know to drop) elsewhere: it is an error instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// classify wraps err in the sentinel error it amounts to, and replaces
// gofish's errors, which quote whole response bodies, by shorter ones.
func classify(err error) error {
	if err == nil {
		return nil
	}
	// gofish reports a collection's failures, the collection's own included,
	// in a map that errors.As does not look into.
	var ce *schemas.CollectionError
	if errors.As(err, &ce) && len(ce.Failures) > 0 {
		keys := make([]string, 0, len(ce.Failures))
		for k := range ce.Failures {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		err = ce.Failures[keys[0]]
	}
	var re *schemas.Error
	if errors.As(err, &re) && re.HTTPReturnedStatusCode != 0 {
		code := re.HTTPReturnedStatusCode
		msg := re.Message
		if msg == "" {
			msg = http.StatusText(code)
		}
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		switch {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return fmt.Errorf("%w (HTTP %d: %s)", ErrUnauthorized, code, msg)
		case code == http.StatusBadRequest && notSupported(re.Code):
			return fmt.Errorf("%w (HTTP %d: %s)", ErrNotSupported, code, msg)
		}
		return fmt.Errorf("HTTP %d: %s", code, msg)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() ||
		errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// notSupported tells the Base registry's messages for an action or action
// parameter the resource does not support.
func notSupported(messageID string) bool {
	for _, key := range []string{"ActionNotSupported", "ActionParameterNotSupported", "ActionParameterValueNotInList"} {
		if strings.HasSuffix(messageID, "."+key) {
			return true
		}
	}
	return false
}
