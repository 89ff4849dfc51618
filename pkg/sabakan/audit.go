package sabakan

import (
	"context"
	"time"
)

// AuditCategory groups audit entries by the kind of object changed.
type AuditCategory string

// Audit categories.
const (
	AuditAssets   AuditCategory = "assets"
	AuditCrypts   AuditCategory = "crypts"
	AuditDHCP     AuditCategory = "dhcp"
	AuditIgnition AuditCategory = "ignition"
	AuditImage    AuditCategory = "image"
	AuditIPAM     AuditCategory = "ipam"
	AuditIPXE     AuditCategory = "ipxe"
	AuditMachines AuditCategory = "machines"
)

// AuditEntry records one mutation: who did what to which object, when.
// Its JSON form is a line of GET /logs. Category, instance and action are
// the reference's words for the changes it logs (clients filter on them);
// docs/sabakan-api.md lists every entry.
type AuditEntry struct {
	Timestamp time.Time     `json:"ts"`
	Revision  int64         `json:"rev,string"`
	User      string        `json:"user"`
	IP        string        `json:"ip"`
	Host      string        `json:"host"`
	Category  AuditCategory `json:"category"`
	Instance  string        `json:"instance"`
	Action    string        `json:"action"`
	Detail    string        `json:"detail"`
}

// Actor is who makes a request: the X-Sabakan-User header, the client
// address and the host name it claims.
type Actor struct {
	User string
	IP   string
	Host string
}

type actorKey struct{}

// WithActor returns a context that carries the actor of a request.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor carried by ctx, if any.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}

// NewAuditEntry returns an entry for a mutation made in ctx at ts.
func NewAuditEntry(ctx context.Context, ts time.Time, cat AuditCategory, instance, action, detail string) AuditEntry {
	a := ActorFrom(ctx)
	return AuditEntry{
		Timestamp: ts.UTC(), User: a.User, IP: a.IP, Host: a.Host,
		Category: cat, Instance: instance, Action: action, Detail: detail,
	}
}
