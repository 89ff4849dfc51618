package repair

import (
	"context"
	"errors"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/redfish"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
)

// BMCPower power-cycles machines with the Redfish client and the BMC
// credentials stored in etcd (read at every action, so that a change by
// `neco bmc set-credentials` applies at once).
type BMCPower struct {
	Storage *storage.Storage
}

// PowerCycle asks the BMC for a PowerCycle reset.
func (p BMCPower) PowerCycle(ctx context.Context, bmcAddr string) error {
	c, err := p.Storage.GetBMCCredentials(ctx)
	if err != nil {
		return err
	}
	return (&bmc.Client{Credentials: c}).Reset(ctx, bmcAddr, redfish.ResetPowerCycle)
}

// SabakanAudit records actions in sabakan's audit log, category power.
type SabakanAudit struct {
	Client *client.Client
}

// Record appends one entry.
func (a SabakanAudit) Record(ctx context.Context, serial, action, detail string) error {
	_, err := a.Client.AddLog(ctx, sabakan.AuditPower, serial, action, detail)
	return err
}

// StoredSettings reads the operator's settings (`neco config`, keys
// repair-*) for Repairer.Settings. The loop is off while repair-after is
// 0 or no BMC credentials are stored.
func StoredSettings(s *storage.Storage) func(ctx context.Context) (Config, bool, error) {
	return func(ctx context.Context) (Config, bool, error) {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			return Config{}, false, err
		}
		c := snap.Config
		if c.RepairAfter <= 0 {
			return Config{}, false, nil
		}
		if _, err := s.GetBMCCredentials(ctx); errors.Is(err, storage.ErrNoBMCCredentials) {
			return Config{}, false, nil
		} else if err != nil {
			return Config{}, false, err
		}
		return Config{After: c.RepairAfter, Limit: c.RepairLimit, Window: c.RepairWindow, Wait: c.RepairWait}, true, nil
	}
}
