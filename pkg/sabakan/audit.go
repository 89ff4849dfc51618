package sabakan

import (
	"context"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
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
	// AuditPower: a machine's power was acted on out of band (neco power,
	// the repair loop). Entries are appended by those programs (POST
	// /api/v1/logs), not by sabakan's own mutations.
	AuditPower AuditCategory = "power"
)

// appendable are the categories whose entries clients append (POST
// /api/v1/logs) to record what they did to a machine outside sabakan. Every
// other category is written only with sabakan's own mutations. Add a
// category here to open it to clients.
var appendable = []AuditCategory{AuditPower}

// AppendableCategories returns the categories clients may append entries of.
func AppendableCategories() []AuditCategory { return slices.Clone(appendable) }

// Appendable reports whether clients may append entries of category c.
func (c AuditCategory) Appendable() bool { return slices.Contains(appendable, c) }

// Limits of an appended entry's action and detail.
const (
	MaxAuditActionLength = 32
	MaxAuditDetailBytes  = 1024
)

var reAuditAction = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// IsValidAuditAction reports whether action may name the action of an
// appended entry: a lowercase letter, then at most 31 lowercase letters,
// digits or '-'.
func IsValidAuditAction(action string) bool { return reAuditAction.MatchString(action) }

// IsValidAuditDetail reports whether detail may be the detail of an
// appended entry: valid UTF-8 of at most MaxAuditDetailBytes bytes (empty
// is fine).
func IsValidAuditDetail(detail string) bool {
	return len(detail) <= MaxAuditDetailBytes && utf8.ValidString(detail)
}

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
