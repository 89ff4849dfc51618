// Package netboot plugs sabakan's network boot into the daemon (package
// server): the DHCP server and its lease view, boot content with its
// replication, Ignition templates, and their REST routes.
package netboot

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/bootapi"
	"github.com/openneco/neco/pkg/sabakan/content"
	"github.com/openneco/neco/pkg/sabakan/dhcpd"
	"github.com/openneco/neco/pkg/sabakan/ignition"
	"github.com/openneco/neco/pkg/sabakan/server"
	"github.com/openneco/neco/pkg/sabakan/store"
)

// RelayDelay delays answers to relayed DHCP requests so that a boot server
// on the client's own segment tends to answer first (the reference's 50 ms).
const RelayDelay = 50 * time.Millisecond

// Extension is network boot as the daemon plugs it in (server.Boot).
func Extension(ctx context.Context, env *server.Env) error {
	cfg := env.Config
	log := slog.Default()
	cs, err := content.New(env.Client, content.Options{
		Dir: cfg.DataDir, AdvertiseURL: cfg.AdvertiseURL, Audit: env.Store.AuditOp,
		Log: log.With("component", "content"),
	})
	if err != nil {
		return err
	}
	env.Web.RegisterBoot(&bootapi.API{
		Content:   cs,
		Ignitions: ignition.NewStore(env.Client, env.Store.AuditOp),
		Machines:  env.Store,
		URLs:      ignition.URLs{HTTP: cfg.AdvertiseURL, HTTPS: cfg.AdvertiseURLHTTPS},
		IPXEEFI:   cfg.IPXEPath,
	})
	env.Go(cs.Run)

	leases := dhcpd.NewEtcdLeases(env.Client, log.With("component", "dhcp"))
	env.Go(leases.Run)
	srv := &dhcpd.Server{
		Bind: cfg.DHCPBind,
		Handler: &dhcpd.Handler{
			Config:       Config(env.Store),
			Leases:       leases,
			AdvertiseURL: cfg.AdvertiseURL,
			RelayDelay:   RelayDelay,
		},
		Log:     log.With("component", "dhcp"),
		Metrics: dhcpd.NewMetrics(env.Registry),
	}
	if _, err := srv.Listen(ctx); err != nil {
		return fmt.Errorf("dhcp-bind: %w", err)
	}
	env.Go(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-leases.Ready():
		}
		return srv.Run(ctx)
	})
	return nil
}

// Config gives the DHCP server the IPAM and DHCP configuration from the
// store's watch-fed index (store.Store.ConfigView): no etcd request per
// packet. A PUT of either reaches the DHCP server within the watch's delay;
// while etcd is unreachable the last configuration seen keeps serving. The
// store loaded its index when it opened, before the server starts, so no
// packet is answered from an unloaded view. Unset ones are nil.
func Config(st *store.Store) dhcpd.ConfigFunc {
	return func(context.Context) (*sabakan.IPAMConfig, *sabakan.DHCPConfig, error) {
		ipam, dhcp := st.ConfigView()
		return ipam, dhcp, nil
	}
}
