package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/poll"
	"github.com/openneco/neco/pkg/services"
)

// JoinTicket lets one new boot server into the cluster. A set-up boot
// server issues it (neco vault issue-join-token); the operator carries the
// file to the new server. Its only secret is a single-use Vault
// response-wrapping token for an AppRole secret_id, valid for a short time.
type JoinTicket struct {
	LRN      int                 `json:"lrn"`
	Wrapped  string              `json:"wrapped_secret_id"`
	Expires  time.Time           `json:"expires"`
	Cluster  *bootserver.Cluster `json:"cluster"` // Servers are the current boot servers
	ServerCA string              `json:"server_ca"`
	PeerCA   string              `json:"peer_ca"`
	ClientCA string              `json:"client_ca"`
}

// IssueJoinTicket makes a ticket for server lrn. vc is logged in as a boot
// server; servers are the current boot servers.
func IssueJoinTicket(ctx context.Context, vc *vault.Client, c *bootserver.Cluster, servers []bootserver.Server, p bootserver.Paths, lrn int, ttl time.Duration) (*JoinTicket, error) {
	if slices.ContainsFunc(servers, func(s bootserver.Server) bool { return s.LRN == lrn }) {
		return nil, fmt.Errorf("boot server %d is already a member: neco leave %d first to replace it", lrn, lrn)
	}
	newcomer, err := c.Lookup(lrn)
	if err != nil {
		return nil, err
	}
	wrapped, err := bootserver.NewSecretID(ctx, vc, lrn, ttl)
	if err != nil {
		return nil, err
	}
	t := &JoinTicket{LRN: lrn, Wrapped: wrapped, Expires: time.Now().Add(ttl).UTC()}
	full := *c
	full.Servers = append(slices.Clone(servers), newcomer)
	t.Cluster = &full
	for _, f := range []struct {
		path string
		dst  *string
	}{{p.ServerCA, &t.ServerCA}, {p.PeerCA, &t.PeerCA}, {p.ClientCA, &t.ClientCA}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		*f.dst = string(data)
	}
	return t, nil
}

// ErrBadJoinToken says the join ticket's token is wrong, used or expired.
var ErrBadJoinToken = errors.New("the join token was rejected by Vault: it is wrong, already used or expired; issue a new one with neco vault issue-join-token LRN on a set-up boot server")

// JoinOptions of Join.
type JoinOptions struct {
	Ticket   *JoinTicket
	Paths    bootserver.Paths
	Services services.Manager
	Daemons  []string
	Timeout  time.Duration
	Log      *slog.Logger
}

// Join makes this server (Ticket.LRN) a boot server of an existing
// cluster: Vault credentials from the ticket, certificates from Vault, an
// etcd member added and started, Vault started and unsealed, registration
// (the updater then includes the server) and the CD daemons. It resumes
// after a crash.
func Join(ctx context.Context, o *JoinOptions) error {
	ctx = poll.WithLog(ctx, o.Log.With("step", "join"))
	t := o.Ticket
	c := t.Cluster
	c.FillDefaults()
	me, err := c.Lookup(t.LRN)
	if err != nil {
		return err
	}
	existing := slices.DeleteFunc(slices.Clone(c.Servers), func(s bootserver.Server) bool { return s.LRN == t.LRN })
	if len(existing) == 0 {
		return errors.New("the join ticket lists no boot servers")
	}
	p := o.Paths
	for _, f := range []struct{ path, pem string }{{p.ServerCA, t.ServerCA}, {p.PeerCA, t.PeerCA}, {p.ClientCA, t.ClientCA}} {
		if err := fileutil.WriteAtomic(f.path, []byte(f.pem), 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	// Vault credentials: unwrap once, then keep them.
	vc, err := anyVault(ctx, c, existing, p)
	if err != nil {
		return err
	}
	if err := bootserver.Login(ctx, vc, p); err != nil {
		if _, statErr := os.Stat(p.AppRole); statErr == nil {
			return err
		}
		if time.Now().After(t.Expires) {
			return fmt.Errorf("the join ticket expired at %s: %w", t.Expires.Format(time.RFC3339), ErrBadJoinToken)
		}
		sec, err := vc.Logical().UnwrapWithContext(ctx, t.Wrapped)
		if err != nil || sec == nil {
			return fmt.Errorf("%w (%v)", ErrBadJoinToken, err)
		}
		id, _ := sec.Data["secret_id"].(string)
		creds, _ := json.Marshal(bootserver.AppRoleCreds{RoleID: bootserver.BootServerRole, SecretID: id})
		if err := fileutil.WriteAtomic(p.AppRole, creds, 0o600); err != nil {
			return err
		}
		if err := bootserver.Login(ctx, vc, p); err != nil {
			return err
		}
	}
	o.Log.Info("joined Vault; issuing certificates")
	if err := bootserver.IssueFromVault(ctx, vc, me, p); err != nil {
		return err
	}

	client, err := etcdutil.New(bootserver.EtcdConfig(c, existing, p, storage.DefaultPrefix))
	if err != nil {
		return err
	}
	defer client.Close()
	members, err := EnsureMember(ctx, client, c, me)
	if err != nil {
		return err
	}
	u, err := EtcdUnit(c, me, members, p, "existing", "")
	if err != nil {
		return err
	}
	if err := o.Services.Start(ctx, u); err != nil {
		return err
	}
	localEtcd, err := etcdutil.New(bootserver.EtcdConfig(c, []bootserver.Server{me}, p, storage.DefaultPrefix))
	if err != nil {
		return err
	}
	defer localEtcd.Close()
	if err := waitEtcd(ctx, localEtcd, len(members)); err != nil {
		return err
	}
	o.Log.Info("etcd member started", "members", len(members))

	if err := WriteVaultConfig(c, me, members, p); err != nil {
		return err
	}
	vu, err := VaultUnit(p)
	if err != nil {
		return err
	}
	if err := o.Services.Start(ctx, vu); err != nil {
		return err
	}
	if err := bootserver.UnsealLocal(ctx, client, c, me, p); err != nil {
		return err
	}
	if err := WriteLocalConfig(c, me, members, p); err != nil {
		return err
	}
	if err := WriteHealthAgentDefaults(me, members, p); err != nil {
		return err
	}
	if err := storage.New(client).RegisterBootServer(ctx, me.LRN, me.Address); err != nil {
		return err
	}
	if err := StartDaemons(ctx, o.Services, o.Daemons, p, me); err != nil {
		return err
	}
	st := &state{Servers: lrns(members), Stage: StageDone}
	data, _ := json.MarshalIndent(st, "", "  ")
	return fileutil.WriteAtomic(p.StateFile, data, 0o600)
}

// anyVault returns a client of the first of servers whose Vault answers.
func anyVault(ctx context.Context, c *bootserver.Cluster, servers []bootserver.Server, p bootserver.Paths) (*vault.Client, error) {
	var errs []string
	for _, s := range servers {
		vc, err := bootserver.NewVaultClient(c.VaultURL(s), p)
		if err != nil {
			return nil, err
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := vc.Sys().HealthWithContext(hctx)
		cancel()
		if err == nil && !h.Sealed {
			return vc, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", s.Name(), err))
	}
	return nil, fmt.Errorf("no unsealed Vault answers among the boot servers (%s): unseal one with neco vault unseal", strings.Join(errs, "; "))
}
