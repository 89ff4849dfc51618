package setup

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/services"
)

// DefaultDaemons are the daemons setup and join start at the end: the CD
// daemons, the serf member of the boot server, the state setter and the
// Kubernetes engine (which waits for cluster.yml or the sabakan
// integration before it does anything).
const DefaultDaemons = "neco-updater,neco-worker,node-health-agent,sabakan-state-setter,cke"

// systemdOnly are daemons started only as the package's units: the
// Kubernetes engine needs the package's Kubernetes executables, which the
// process runner's simulated boot servers do not have.
var systemdOnly = map[string]bool{"cke": true}

// StartDaemons starts the CD daemons. Under systemd the units the neco
// package ships are enabled as they are; the process runner (tests, hosts
// without systemd) runs them with every path under p's root and their
// metrics on the server's own address, so that simulated boot servers on one
// host do not collide.
func StartDaemons(ctx context.Context, svc services.Manager, names []string, p bootserver.Paths, me bootserver.Server) error {
	for _, n := range names {
		if sd, ok := svc.(*services.Systemd); ok {
			if _, err := os.Stat("/lib/systemd/system/" + n + ".service"); err == nil {
				if err := sd.Enable(ctx, n); err != nil {
					return err
				}
				continue
			}
		}
		if systemdOnly[n] {
			slog.Info("not started outside systemd", "daemon", n)
			continue
		}
		cmd, err := services.Command(n, daemonArgs(n, p, me)...)
		if err != nil {
			return err
		}
		if err := svc.Start(ctx, services.Unit{Name: n, Description: n + " of neco", Command: cmd, StopTimeout: 30 * time.Second}); err != nil {
			return err
		}
	}
	return nil
}

// daemonArgs are the command-line flags of a CD daemon (cmd/neco-updater,
// cmd/neco-worker) outside systemd.
func daemonArgs(name string, p bootserver.Paths, me bootserver.Server) []string {
	args := []string{"-config", p.Config}
	switch name {
	case "neco-updater":
		args = append(args, "-listen", net.JoinHostPort(me.Address, "10090"))
	case "neco-worker":
		args = append(args, "-listen", net.JoinHostPort(me.Address, "10091"),
			"-rack-file", p.Rack, "-cluster", p.ClusterDef,
			"-sabakan-config", filepath.Join(p.Root, "etc", "sabakan", "config.yml"),
			"-registry-config", filepath.Join(p.Root, "etc", "neco-registry", "config.yml"), "-root", p.Root)
	case "node-health-agent":
		// Its options are those of the package's unit (the defaults file).
		return []string{"-bind", net.JoinHostPort(me.Address, strconv.Itoa(HealthAgentPort)),
			"-listen", net.JoinHostPort(me.Address, "7947")}
	case "sabakan-state-setter":
		args = append(args, "-members-url", "http://"+net.JoinHostPort(me.Address, "7947"),
			"-sabakan-url", "http://"+net.JoinHostPort(me.Address, "10080"),
			"-metrics", net.JoinHostPort(me.Address, "10083"))
	}
	return args
}
