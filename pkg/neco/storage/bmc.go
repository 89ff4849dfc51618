package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openneco/neco/pkg/bmc"
)

// BMCCredentials holds the user name and password of the machines' BMCs
// (`neco bmc set-credentials`), as JSON {"username", "password"}.
const BMCCredentials = "bmc/credentials"

// ErrNoBMCCredentials means the operator has not stored the BMCs'
// credentials yet.
var ErrNoBMCCredentials = errors.New("no BMC credentials are stored: run neco bmc set-credentials")

type bmcCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// SetBMCCredentials stores the BMCs' credentials, replacing any.
func (s *Storage) SetBMCCredentials(ctx context.Context, c bmc.Credentials) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(bmcCredentials(c))
	if err != nil {
		return err
	}
	if _, err := s.Client.Put(ctx, BMCCredentials, string(b)); err != nil {
		return fmt.Errorf("storage: store the BMC credentials: %w", err)
	}
	return nil
}

// GetBMCCredentials returns the stored credentials, or ErrNoBMCCredentials.
func (s *Storage) GetBMCCredentials(ctx context.Context) (bmc.Credentials, error) {
	resp, err := s.Client.Get(ctx, BMCCredentials)
	if err != nil {
		return bmc.Credentials{}, fmt.Errorf("storage: read the BMC credentials: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return bmc.Credentials{}, ErrNoBMCCredentials
	}
	var c bmcCredentials
	if err := json.Unmarshal(resp.Kvs[0].Value, &c); err != nil {
		return bmc.Credentials{}, fmt.Errorf("storage: %s does not decode: %w", BMCCredentials, err)
	}
	return bmc.Credentials(c), nil
}
