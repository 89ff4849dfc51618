package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/sabakan"
	"sigs.k8s.io/yaml"
)

// ErrUnknownSerial is returned when sabakan does not know the machine.
var ErrUnknownSerial = errors.New("machine not registered in sabakan")

// ReadSerial returns the serial from the flag, or else from the file
// (SMBIOS product_serial), without surrounding white space.
func ReadSerial(serial, file string) (string, error) {
	if serial != "" {
		return serial, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("agent: read serial: %w (set -serial)", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("agent: serial file %s is empty (set -serial)", file)
	}
	return s, nil
}

// ReadIdentityFile reads a bgp.Source from a YAML or JSON file. Unknown
// keys are errors.
func ReadIdentityFile(path string) (*bgp.Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: identity file: %w", err)
	}
	var src bgp.Source
	if err := yaml.UnmarshalStrict(b, &src); err != nil {
		return nil, fmt.Errorf("%w: identity file %s: %v", bgp.ErrInvalidIdentity, path, err)
	}
	return &src, nil
}

// TransientError marks failures worth retrying (sabakan unreachable or
// failing), as opposed to answers that say the identity is wrong.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// FetchSabakan reads the machine with serial and the IPAM configuration
// from sabakan's REST API. A 404 for the machine is ErrUnknownSerial; a
// connection failure or a 5xx is a *TransientError.
//
// It decodes the reference JSON itself; once pkg/sabakan/client exists,
// this is the one function to swap for it.
func FetchSabakan(ctx context.Context, c *http.Client, baseURL, serial string) (*bgp.Source, error) {
	base, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: sabakan-url %q is not an http(s) URL", bgp.ErrInvalidSettings, baseURL)
	}
	var machines []sabakan.Machine
	q := url.Values{"serial": {serial}}
	err = getJSON(ctx, c, base.String()+"/api/v1/machines?"+q.Encode(), &machines)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusNotFound {
		return nil, fmt.Errorf("agent: %w: no machine with serial %q (GET %s/api/v1/machines?serial= answered 404)", ErrUnknownSerial, serial, base)
	}
	if err != nil {
		return nil, err
	}
	if len(machines) != 1 || machines[0].Spec.Serial != serial {
		return nil, fmt.Errorf("%w: sabakan returned %d machines for serial %q, want exactly that one", bgp.ErrInvalidIdentity, len(machines), serial)
	}
	src := &bgp.Source{Machine: machines[0]}
	if err := getJSON(ctx, c, base.String()+"/api/v1/config/ipam", &src.IPAM); err != nil {
		return nil, err
	}
	return src, nil
}

type httpError struct {
	url    string
	status int
	msg    string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("agent: GET %s: %d %s", e.url, e.status, e.msg)
}

func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return &TransientError{fmt.Errorf("agent: GET %s: %w", u, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &TransientError{fmt.Errorf("agent: GET %s: %w", u, err)}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		err := &httpError{url: u, status: resp.StatusCode, msg: e.Error}
		if resp.StatusCode >= 500 {
			return &TransientError{err}
		}
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: GET %s: %v", bgp.ErrInvalidIdentity, u, err)
	}
	return nil
}

// writeCache stores the identity's source so that a restart works without
// sabakan.
func writeCache(path string, src *bgp.Source) error {
	b, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("agent: cache identity: %w", err)
	}
	return os.Rename(tmp, path)
}
