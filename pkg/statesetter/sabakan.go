package statesetter

import (
	"context"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
)

// SabakanInventory is the Inventory of a sabakan server.
type SabakanInventory struct {
	Client *client.Client
}

// Machines lists every machine.
func (s SabakanInventory) Machines(ctx context.Context) ([]sabakan.Machine, error) {
	return s.Client.Machines(ctx, nil)
}

// SetState sets one machine's state.
func (s SabakanInventory) SetState(ctx context.Context, serial string, state sabakan.MachineState) error {
	return s.Client.SetState(ctx, serial, state)
}
