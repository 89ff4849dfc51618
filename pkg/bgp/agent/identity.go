package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
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
// from sabakan's REST API. An unknown serial is ErrUnknownSerial; an
// unreachable or failing (5xx) sabakan is a *TransientError.
func FetchSabakan(ctx context.Context, hc *http.Client, baseURL, serial string) (*bgp.Source, error) {
	c, err := client.New(baseURL, client.WithHTTPClient(hc), client.WithUser("bgp-node-agent"))
	if err != nil {
		return nil, fmt.Errorf("%w: sabakan-url: %v", bgp.ErrInvalidSettings, err)
	}
	m, err := c.Machine(ctx, serial)
	if errors.Is(err, sabakan.ErrNotFound) {
		return nil, fmt.Errorf("agent: %w: no machine with serial %q in sabakan at %s", ErrUnknownSerial, serial, baseURL)
	}
	if err != nil {
		return nil, sabakanError("machine "+serial, err)
	}
	if m.Spec.Serial != serial {
		return nil, fmt.Errorf("%w: sabakan answered machine %q for serial %q", bgp.ErrInvalidIdentity, m.Spec.Serial, serial)
	}
	ipam, err := c.IPAM(ctx)
	if err != nil {
		return nil, sabakanError("IPAM configuration", err)
	}
	return &bgp.Source{Machine: *m, IPAM: *ipam}, nil
}

// sabakanError classifies a failed sabakan request: no answer or a 5xx is
// transient, anything else is a wrong identity.
func sabakanError(what string, err error) error {
	status := client.StatusOf(err)
	if status == 0 || status >= 500 {
		return &TransientError{fmt.Errorf("agent: sabakan: %s: %w", what, err)}
	}
	return fmt.Errorf("%w: sabakan: %s: %v", bgp.ErrInvalidIdentity, what, err)
}

// writeCache stores the identity's source so that a restart works without
// sabakan.
func writeCache(path string, src *bgp.Source) error {
	b, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(path, b, 0o644); err != nil {
		return fmt.Errorf("agent: cache identity: %w", err)
	}
	return nil
}
