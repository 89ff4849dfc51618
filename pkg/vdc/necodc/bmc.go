package necodc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/vdc/host"
	"github.com/openneco/neco/pkg/vdc/menu"
	"github.com/openneco/neco/pkg/vdc/proc"
	"github.com/openneco/neco/pkg/vdc/vbmc"
)

// BMCUser is the user name of the data center's BMCs.
const BMCUser = "neco"

// BMCPasswordFile is where the boot servers find the BMCs' password (in
// the share), for `neco bmc set-credentials --password-file`, as an
// operator would hand it over.
const BMCPasswordFile = ShareDir + "/bmc-password"

// startBMCs gives the data center's BMCs a fresh password and starts the
// virtual BMC service (vdc bmc serve) as an app of the BMC namespace.
func (d *DC) startBMCs(ctx context.Context, vdcBinary, files string) error {
	creds := bmc.Credentials{Username: BMCUser, Password: rand.Text()}
	b, err := json.Marshal(map[string]string{"username": creds.Username, "password": creds.Password})
	if err != nil {
		return err
	}
	credFile := filepath.Join(d.Names.StateDir(), "bmc-credentials.json")
	if err := os.WriteFile(credFile, b, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.Share, "bmc-password"), []byte(creds.Password+"\n"), 0o600); err != nil {
		return err
	}
	args := []string{vdcBinary, "--name", d.Names.Instance, "--state-root", d.Names.StateRoot, "bmc", "serve",
		"--config", filepath.Join(files, menu.BMCFile), "--credentials", credFile,
		"--cert-out", filepath.Join(d.Share, "bmc-cert.pem")}
	if _, err := d.In.StartService(menu.BMCHost, "vbmc", args); err != nil {
		return fmt.Errorf("virtual BMCs: %w", err)
	}
	d.BMC = creds
	// Serving once the first BMC address answers.
	first := d.Plan.Hosts[d.Plan.Cluster.NspawnNodes[0].Name].BMC
	addr := netip.AddrPortFrom(first, vbmc.Port).String()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var derr error
	if err := proc.WaitFor(ctx, 100*time.Millisecond, func() bool {
		derr = host.InNetns(d.Names.Netns(menu.BMCHost), func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		return derr == nil
	}); err != nil {
		return fmt.Errorf("virtual BMCs: %s does not answer (see %s): %w", addr,
			filepath.Join(d.Names.HostDir(menu.BMCHost), "vbmc.log"), derr)
	}
	return nil
}
