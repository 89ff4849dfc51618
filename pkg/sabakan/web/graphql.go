package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
	"github.com/graph-gophers/graphql-go/ast"
	gqlerrors "github.com/graph-gophers/graphql-go/errors"

	"github.com/openneco/neco/pkg/sabakan"
)

// graphQLSchema is the reference boot server's schema: the reference
// Kubernetes engine's sabakan integration queries searchMachines with it.
const graphQLSchema = `
schema {
    query: Query
    mutation: Mutation
}

type Query {
    machine(serial: ID!): Machine!
    searchMachines(having: MachineParams, notHaving: MachineParams): [Machine!]!
}

type Mutation {
    setMachineState(serial: ID!, state: MachineState!): MachineStatus!
}

"""MachineParams is a set of input parameters to search machines."""
input MachineParams {
    labels: [LabelInput!]
    racks: [Int!]
    roles: [String!]
    states: [MachineState!]
    minDaysBeforeRetire: Int
}

"""LabelInput represents a label to search machines."""
input LabelInput {
    name: String!
    value: String!
}

"""Machine represents a physical server in a datacenter rack."""
type Machine {
    spec: MachineSpec!
    status: MachineStatus!
    info: MachineInfo!
}

"""MachineSpec represents specifications of a machine."""
type MachineSpec {
    serial: ID!
    labels: [Label!]
    rack: Int!
    indexInRack: Int!
    role: String!
    ipv4: [IPAddress!]!
    registerDate: DateTime!
    retireDate: DateTime!
    bmc: BMC!
}

"""Label represents an arbitrary key-value pair."""
type Label {
    name: String!
    value: String!
}

"""IPAddress represents an IPv4 or IPv6 address."""
scalar IPAddress

"""DateTime represents a date and time value (RFC 3339)."""
scalar DateTime

"""BMC represents a Baseboard Management Controller."""
type BMC {
    bmcType: String!
    ipv4: IPAddress!
}

"""MachineStatus represents status of a Machine."""
type MachineStatus {
    state: MachineState!
    timestamp: DateTime!
    duration: Float!
}

"""MachineState enumerates machine states."""
enum MachineState {
    UNINITIALIZED
    HEALTHY
    UNHEALTHY
    UNREACHABLE
    UPDATING
    RETIRING
    RETIRED
}

"""MachineInfo represents miscellaneous information for Machine."""
type MachineInfo {
    network: NetworkInfo!
    bmc: BMCInfo!
}

"""NetworkInfo represents NIC configurations."""
type NetworkInfo {
    ipv4: [NICConfig!]!
}

"""BMCInfo represents BMC NIC configuration information."""
type BMCInfo {
    ipv4: NICConfig!
}

"""NICConfig represents NIC configuration."""
type NICConfig {
    address: IPAddress!
    netmask: IPAddress!
    maskbits: Int!
    gateway: IPAddress!
}
`

// GraphQL error types, in the errors' extensions (the reference's codes).
const (
	gqlInvalidStateName       = "INVALID_STATE_NAME"
	gqlInvalidStateTransition = "INVALID_STATE_TRANSITION"
	gqlEncryptionKeyExists    = "ENCRYPTION_KEY_EXISTS"
	gqlMachineNotFound        = "MACHINE_NOT_FOUND"
	gqlForbidden              = "FORBIDDEN"
	gqlServiceUnavailable     = "SERVICE_UNAVAILABLE"
	gqlInternalServerError    = "INTERNAL_SERVER_ERROR"
	// gqlQueryTooComplex is ours: a query refused before it runs (400).
	gqlQueryTooComplex = "QUERY_TOO_COMPLEX"
)

// Limits of one GraphQL request, checked before it runs (gqlcost.go). The
// values limit is the larger of graphQLMinValues and graphQLFullSearches
// searches of every machine with every field, so that whatever the
// inventory's size a client may always read all of it.
const (
	graphQLMaxRootFields  = 100
	graphQLMaxSearches    = 5
	graphQLMaxFields      = 1000
	graphQLMinValues      = 500_000
	graphQLFullSearches   = 2
	graphQLFullMachineSet = `{ searchMachines { spec { serial labels { name value } rack indexInRack role ipv4 registerDate retireDate bmc { bmcType ipv4 } } status { state timestamp duration } info { network { ipv4 { address netmask maskbits gateway } } bmc { ipv4 { address netmask maskbits gateway } } } } }`
)

// gqlError is a resolver error with the reference's extensions.
type gqlError struct {
	err    error
	typ    string
	serial string
}

func (e *gqlError) Error() string { return e.err.Error() }

func (e *gqlError) Extensions() map[string]any {
	ext := map[string]any{"type": e.typ}
	if e.serial != "" {
		ext["serial"] = e.serial
	}
	return ext
}

// toGQLError classifies a store error.
func toGQLError(err error, serial string, setState bool) error {
	typ := gqlInternalServerError
	switch {
	case errors.Is(err, sabakan.ErrNotFound):
		typ = gqlMachineNotFound
	case errors.Is(err, sabakan.ErrBadRequest) && setState:
		typ = gqlEncryptionKeyExists // the only bad request of a valid state name
	case errors.Is(err, sabakan.ErrConflict):
		typ = gqlInvalidStateTransition
	case errors.Is(err, sabakan.ErrUnavailable):
		typ = gqlServiceUnavailable
	case errors.Is(err, ErrForbidden):
		typ = gqlForbidden
	}
	return &gqlError{err: err, typ: typ, serial: serial}
}

// newGraphQL parses the schema with the server's resolvers, and measures
// the introspection lists for the cost estimates.
func (s *Server) newGraphQL() *graphql.Schema {
	schema := graphql.MustParseSchema(graphQLSchema, &gqlRoot{s: s},
		graphql.MaxDepth(12), graphql.MaxQueryLength(graphQLLimit))
	s.gqlSchemaLists = introspectionLists(schema.AST())
	return schema
}

// introspectionLists are the most entries each introspection list of the
// schema has: types, fields of a type, arguments of a field, ...
func introspectionLists(sc *ast.Schema) gqlMultipliers {
	m := gqlMultipliers{"types": int64(len(sc.Types)), "directives": int64(len(sc.Directives))}
	up := func(name string, n int) { m[name] = max(m[name], int64(n)) }
	fields := func(fs ast.FieldsDefinition) {
		up("fields", len(fs))
		for _, f := range fs {
			up("args", len(f.Arguments))
		}
	}
	for _, t := range sc.Types {
		switch t := t.(type) {
		case *ast.ObjectTypeDefinition:
			fields(t.Fields)
			up("interfaces", len(t.Interfaces))
		case *ast.InterfaceTypeDefinition:
			fields(t.Fields)
			up("interfaces", len(t.Interfaces))
			up("possibleTypes", len(t.PossibleTypes))
		case *ast.Union:
			up("possibleTypes", len(t.UnionMemberTypes))
		case *ast.EnumTypeDefinition:
			up("enumValues", len(t.EnumValuesDefinition))
		case *ast.InputObject:
			up("inputFields", len(t.Values))
		}
	}
	for _, d := range sc.Directives {
		up("locations", len(d.Locations))
		up("args", len(d.Arguments))
	}
	return m
}

// graphQLCost checks the query against the request limits before it runs.
// A query it cannot measure is checked by graphql-go instead: when that
// finds the error, its errors are the answer (invalid); when not,
// the query is refused, since it would run unmeasured.
func (s *Server) graphQLCost(query, operationName string) (invalid []*gqlerrors.QueryError, err error) {
	z := s.cfg.Store.Sizes()
	mult := gqlMultipliers{"searchMachines": int64(z.Machines), "labels": int64(z.MaxLabels), "ipv4": int64(z.MaxIPv4)}
	for k, v := range s.gqlSchemaLists {
		mult[k] = v
	}
	cost, err := estimateGraphQL(query, operationName, mult)
	if errors.Is(err, errQueryLimit) {
		return nil, fmt.Errorf("%w: %v", errQueryTooComplex, err)
	}
	if err != nil {
		if errs := s.graphql.Validate(query); len(errs) > 0 {
			return errs, nil
		}
		return nil, fmt.Errorf("%w: its cost cannot be estimated: %v", errQueryTooComplex, err)
	}
	full, err := estimateGraphQL(graphQLFullMachineSet, "", mult)
	if err != nil {
		return nil, err // a constant
	}
	limits := gqlLimits{rootFields: graphQLMaxRootFields, searches: graphQLMaxSearches, fields: graphQLMaxFields,
		values: max(graphQLMinValues, satMul(graphQLFullSearches, full.values))}
	return nil, cost.check(limits, z.Machines)
}

// postGraphQL serves POST /graphql: {"query", "operationName", "variables"}.
func (s *Server) postGraphQL(w http.ResponseWriter, r *http.Request) error {
	data, err := ReadBody(r, graphQLLimit)
	if err != nil {
		return err
	}
	var params struct {
		Query         string         `json:"query"`
		OperationName string         `json:"operationName"`
		Variables     map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(data, &params); err != nil {
		return fmt.Errorf("%w: graphql: invalid JSON body: %v", sabakan.ErrBadRequest, err)
	}
	if strings.TrimSpace(params.Query) == "" {
		return fmt.Errorf("%w: graphql: the body needs a query", sabakan.ErrBadRequest)
	}
	invalid, err := s.graphQLCost(params.Query, params.OperationName)
	if err != nil {
		// GraphQL's error format, with the status of a refused request.
		WriteJSON(w, http.StatusBadRequest, &graphql.Response{Errors: []*gqlerrors.QueryError{{
			Message: "graphql: " + err.Error(), Extensions: map[string]any{"type": gqlQueryTooComplex},
		}}})
		return nil
	}
	if invalid != nil {
		WriteJSON(w, http.StatusOK, &graphql.Response{Errors: invalid})
		return nil
	}
	if !s.gqlSlowOnly && s.fastSearch(w, r, params.Query, params.OperationName, params.Variables) {
		return nil
	}
	resp := s.graphql.Exec(r.Context(), params.Query, params.OperationName, params.Variables)
	WriteJSON(w, http.StatusOK, resp)
	return nil
}

type gqlRoot struct{ s *Server }

func (q *gqlRoot) Machine(ctx context.Context, args struct{ Serial graphql.ID }) (*gqlMachine, error) {
	serial := string(args.Serial)
	m, err := q.s.cfg.Store.Machine(ctx, serial)
	if err != nil {
		return nil, toGQLError(err, serial, false)
	}
	return &gqlMachine{m}, nil
}

// MachineParams is the GraphQL input MachineParams; nil means null.
type MachineParams struct {
	Labels              []LabelInput
	Racks               []int32
	Roles               []string
	States              []string
	MinDaysBeforeRetire *int32
}

// LabelInput is the GraphQL input LabelInput.
type LabelInput struct {
	Name  string
	Value string
}

// gqlParams is MachineParams as graphql-go fills it: nullable lists are
// pointers.
type gqlParams struct {
	Labels              *[]LabelInput
	Racks               *[]int32
	Roles               *[]string
	States              *[]string
	MinDaysBeforeRetire *int32
}

func (p *gqlParams) params() *MachineParams {
	if p == nil {
		return nil
	}
	out := &MachineParams{MinDaysBeforeRetire: p.MinDaysBeforeRetire}
	if p.Labels != nil {
		out.Labels = *p.Labels
	}
	if p.Racks != nil {
		out.Racks = *p.Racks
	}
	if p.Roles != nil {
		out.Roles = *p.Roles
	}
	if p.States != nil {
		out.States = *p.States
	}
	return out
}

func (q *gqlRoot) SearchMachines(ctx context.Context, args struct{ Having, NotHaving *gqlParams }) ([]*gqlMachine, error) {
	having, notHaving := args.Having.params(), args.NotHaving.params()
	// The having side narrows the index lookup; MatchMachine decides.
	var has sabakan.Filter
	if h := having; h != nil {
		if len(h.Racks) > 0 {
			for _, r := range h.Racks {
				if r < 0 {
					return []*gqlMachine{}, nil
				}
				has.Racks = append(has.Racks, uint(r))
			}
		}
		if len(h.Roles) > 0 {
			has.Roles = h.Roles
		}
	}
	ms, err := q.s.cfg.Store.Query(ctx, &sabakan.Query{Has: has})
	if err != nil {
		return nil, toGQLError(err, "", false)
	}
	now := q.s.now()
	out := make([]*gqlMachine, 0, len(ms))
	for i := range ms {
		if MatchMachine(&ms[i], having, notHaving, now) {
			out = append(out, &gqlMachine{&ms[i]})
		}
	}
	if c, ok := ctx.Value(gqlCaptureKey{}).(*gqlCapture); ok {
		// The fast path writes the answer (gqlfast.go).
		c.machines, c.done = out, true
		return []*gqlMachine{}, nil
	}
	return out, nil
}

func (q *gqlRoot) SetMachineState(ctx context.Context, args struct {
	Serial graphql.ID
	State  string
}) (*gqlStatus, error) {
	serial := string(args.Serial)
	if !isAllowed(ctx) {
		a := sabakan.ActorFrom(ctx)
		return nil, &gqlError{err: fmt.Errorf("%w: setMachineState is not allowed from %s (see allow-ips)", ErrForbidden, a.IP), typ: gqlForbidden, serial: serial}
	}
	state, err := sabakan.ParseState(strings.ToLower(args.State))
	if err != nil {
		return nil, &gqlError{err: err, typ: gqlInvalidStateName, serial: serial}
	}
	m, err := q.s.cfg.Store.SetState(ctx, serial, state)
	if err != nil {
		return nil, toGQLError(err, serial, true)
	}
	st := m.WithDuration(q.s.now()).Status
	return &gqlStatus{&st}, nil
}

// MatchMachine is the reference's searchMachines filter: a machine matches
// when it has all labels, one of the racks, roles and states, and at least
// minDaysBeforeRetire days before its retire date of having; and none of the
// labels, racks, roles, states of notHaving, nor minDaysBeforeRetire days or
// more. Empty or null fields do not constrain.
func MatchMachine(m *sabakan.Machine, h, nh *MachineParams, now time.Time) bool {
	days := int32(m.Spec.RetireDate.Sub(now).Hours() / 24)
	state := strings.ToUpper(string(m.Status.State))
	if h != nil {
		for _, l := range h.Labels {
			if v, ok := m.Spec.Labels[l.Name]; !ok || v != l.Value {
				return false
			}
		}
		if len(h.Racks) > 0 && !slices.Contains(h.Racks, int32(m.Spec.Rack)) {
			return false
		}
		if len(h.Roles) > 0 && !slices.Contains(h.Roles, m.Spec.Role) {
			return false
		}
		if len(h.States) > 0 && !slices.Contains(h.States, state) {
			return false
		}
		if h.MinDaysBeforeRetire != nil && *h.MinDaysBeforeRetire > days {
			return false
		}
	}
	if nh != nil {
		for _, l := range nh.Labels {
			if v, ok := m.Spec.Labels[l.Name]; ok && v == l.Value {
				return false
			}
		}
		if slices.Contains(nh.Racks, int32(m.Spec.Rack)) {
			return false
		}
		if slices.Contains(nh.Roles, m.Spec.Role) {
			return false
		}
		if slices.Contains(nh.States, state) {
			return false
		}
		if nh.MinDaysBeforeRetire != nil && *nh.MinDaysBeforeRetire <= days {
			return false
		}
	}
	return true
}

type gqlMachine struct{ m *sabakan.Machine }

func (g *gqlMachine) Spec() *gqlSpec     { return &gqlSpec{&g.m.Spec} }
func (g *gqlMachine) Status() *gqlStatus { return &gqlStatus{&g.m.Status} }
func (g *gqlMachine) Info() *gqlInfo     { return &gqlInfo{&g.m.Info} }

type gqlSpec struct{ s *sabakan.MachineSpec }

func (g *gqlSpec) Serial() graphql.ID { return graphql.ID(g.s.Serial) }
func (g *gqlSpec) Rack() int32        { return int32(g.s.Rack) }
func (g *gqlSpec) IndexInRack() int32 { return int32(g.s.IndexInRack) }
func (g *gqlSpec) Role() string       { return g.s.Role }
func (g *gqlSpec) RegisterDate() DateTime {
	return DateTime{g.s.RegisterDate}
}
func (g *gqlSpec) RetireDate() DateTime { return DateTime{g.s.RetireDate} }
func (g *gqlSpec) BMC() *gqlBMC         { return &gqlBMC{&g.s.BMC} }

func (g *gqlSpec) Labels() *[]*gqlLabel {
	if len(g.s.Labels) == 0 {
		return nil
	}
	names := make([]string, 0, len(g.s.Labels))
	for k := range g.s.Labels {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]*gqlLabel, len(names))
	for i, k := range names {
		out[i] = &gqlLabel{name: k, value: g.s.Labels[k]}
	}
	return &out
}

func (g *gqlSpec) Ipv4() []IPAddress {
	out := make([]IPAddress, len(g.s.IPv4))
	for i, a := range g.s.IPv4 {
		out[i] = IPAddress(a)
	}
	return out
}

type gqlLabel struct{ name, value string }

func (g *gqlLabel) Name() string  { return g.name }
func (g *gqlLabel) Value() string { return g.value }

type gqlBMC struct{ b *sabakan.MachineBMC }

func (g *gqlBMC) BmcType() string { return g.b.Type }
func (g *gqlBMC) Ipv4() IPAddress { return IPAddress(g.b.IPv4) }

type gqlStatus struct{ s *sabakan.MachineStatus }

func (g *gqlStatus) State() string       { return strings.ToUpper(string(g.s.State)) }
func (g *gqlStatus) Timestamp() DateTime { return DateTime{g.s.Timestamp} }
func (g *gqlStatus) Duration() float64   { return g.s.Duration }

type gqlInfo struct{ i *sabakan.MachineInfo }

func (g *gqlInfo) Network() *gqlNetwork { return &gqlNetwork{&g.i.Network} }
func (g *gqlInfo) BMC() *gqlBMCInfo     { return &gqlBMCInfo{&g.i.BMC} }

type gqlNetwork struct{ n *sabakan.NetworkInfo }

func (g *gqlNetwork) Ipv4() []*gqlNIC {
	out := make([]*gqlNIC, len(g.n.IPv4))
	for i := range g.n.IPv4 {
		out[i] = &gqlNIC{&g.n.IPv4[i]}
	}
	return out
}

type gqlBMCInfo struct{ b *sabakan.BMCInfo }

func (g *gqlBMCInfo) Ipv4() *gqlNIC { return &gqlNIC{&g.b.IPv4} }

type gqlNIC struct{ c *sabakan.NICConfig }

func (g *gqlNIC) Address() IPAddress { return IPAddress(g.c.Address) }
func (g *gqlNIC) Netmask() IPAddress { return IPAddress(g.c.Netmask) }
func (g *gqlNIC) Maskbits() int32    { return int32(g.c.MaskBits) }
func (g *gqlNIC) Gateway() IPAddress { return IPAddress(g.c.Gateway) }

// IPAddress is the GraphQL scalar IPAddress: an address as a string.
type IPAddress string

// ImplementsGraphQLType maps the type to the scalar.
func (IPAddress) ImplementsGraphQLType(name string) bool { return name == "IPAddress" }

// UnmarshalGraphQL accepts a string.
func (a *IPAddress) UnmarshalGraphQL(input any) error {
	s, ok := input.(string)
	if !ok {
		return fmt.Errorf("IPAddress: want a string, got %T", input)
	}
	*a = IPAddress(s)
	return nil
}

// DateTime is the GraphQL scalar DateTime, an RFC 3339 string.
type DateTime struct{ time.Time }

// ImplementsGraphQLType maps the type to the scalar.
func (DateTime) ImplementsGraphQLType(name string) bool { return name == "DateTime" }

// UnmarshalGraphQL accepts an RFC 3339 string.
func (d *DateTime) UnmarshalGraphQL(input any) error {
	s, ok := input.(string)
	if !ok {
		return fmt.Errorf("DateTime: want an RFC 3339 string, got %T", input)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("DateTime: %w", err)
	}
	d.Time = t
	return nil
}

// MarshalJSON writes RFC 3339 with nanoseconds, in UTC.
func (d DateTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.UTC().Format(time.RFC3339Nano))
}
