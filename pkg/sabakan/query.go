package sabakan

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Filter is one side of a Query. Each set field is a list of alternatives
// (ORed); Labels pairs must all be present (ANDed).
type Filter struct {
	Serials  []string
	Racks    []uint
	Roles    []string
	IPv4     []string
	IPv6     []string
	BMCTypes []string
	States   []MachineState
	Labels   map[string]string
}

// IsEmpty reports whether the filter sets no field.
func (f *Filter) IsEmpty() bool {
	return f.Serials == nil && f.Racks == nil && f.Roles == nil && f.IPv4 == nil &&
		f.IPv6 == nil && f.BMCTypes == nil && f.States == nil && f.Labels == nil
}

// Query selects machines like the GET /machines parameters: a machine
// matches when it matches every set field of Has and no set field of Not.
type Query struct {
	Has Filter
	Not Filter
}

// Match reports whether m is selected.
func (q *Query) Match(m *Machine) bool {
	return q.Has.matchAll(m) && !q.Not.matchAny(m)
}

// IsEmpty reports whether the query selects every machine.
func (q *Query) IsEmpty() bool { return q.Has.IsEmpty() && q.Not.IsEmpty() }

// checks returns, for each set field, whether m matches it.
func (f *Filter) checks(m *Machine) []bool {
	var r []bool
	if f.Serials != nil {
		r = append(r, slices.Contains(f.Serials, m.Spec.Serial))
	}
	if f.Racks != nil {
		r = append(r, slices.Contains(f.Racks, m.Spec.Rack))
	}
	if f.Roles != nil {
		r = append(r, slices.Contains(f.Roles, m.Spec.Role))
	}
	if f.IPv4 != nil {
		r = append(r, slices.ContainsFunc(m.Spec.IPv4, func(a string) bool { return slices.Contains(f.IPv4, a) }))
	}
	if f.IPv6 != nil {
		r = append(r, slices.ContainsFunc(m.Spec.IPv6, func(a string) bool { return slices.Contains(f.IPv6, a) }))
	}
	if f.BMCTypes != nil {
		r = append(r, slices.Contains(f.BMCTypes, m.Spec.BMC.Type))
	}
	if f.States != nil {
		r = append(r, slices.Contains(f.States, m.Status.State))
	}
	if f.Labels != nil {
		all := true
		for k, v := range f.Labels {
			if got, ok := m.Spec.Labels[k]; !ok || got != v {
				all = false
				break
			}
		}
		r = append(r, all)
	}
	return r
}

func (f *Filter) matchAll(m *Machine) bool { return !slices.Contains(f.checks(m), false) }
func (f *Filter) matchAny(m *Machine) bool { return slices.Contains(f.checks(m), true) }

// queryFields are the GET /machines parameters; each also has a without- form.
var queryFields = []string{"serial", "rack", "role", "labels", "ipv4", "ipv6", "bmc-type", "state"}

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: query: "+format, append([]any{ErrBadRequest}, args...)...)
}

// ParseQuery parses the GET /machines parameters. Values of one field are
// comma-separated alternatives; repeating a parameter adds alternatives.
// Unknown parameters, malformed values and a field given together with its
// without- form are errors.
func ParseQuery(v url.Values) (*Query, error) {
	q := &Query{}
	for name := range v {
		field := strings.TrimPrefix(name, "without-")
		if !slices.Contains(queryFields, field) {
			return nil, badQuery("unknown parameter %q (known: %s, each also as without-…)", name, strings.Join(queryFields, ", "))
		}
	}
	for _, field := range queryFields {
		has, not := values(v, field), values(v, "without-"+field)
		if has != nil && not != nil {
			return nil, badQuery("%s and without-%s cannot be used together", field, field)
		}
		if err := q.Has.set(field, has); err != nil {
			return nil, err
		}
		if err := q.Not.set(field, not); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// values splits all values of a parameter at commas; nil when absent or empty.
func values(v url.Values, name string) []string {
	var r []string
	for _, s := range v[name] {
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				r = append(r, e)
			}
		}
	}
	return r
}

func (f *Filter) set(field string, vals []string) error {
	if vals == nil {
		return nil
	}
	switch field {
	case "serial":
		f.Serials = vals
	case "rack":
		for _, s := range vals {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return badQuery("invalid rack %q: want a non-negative integer", s)
			}
			f.Racks = append(f.Racks, uint(n))
		}
	case "role":
		f.Roles = vals
	case "ipv4", "ipv6":
		for _, s := range vals {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Is4() != (field == "ipv4") {
				return badQuery("invalid %s address %q", field, s)
			}
		}
		if field == "ipv4" {
			f.IPv4 = vals
		} else {
			f.IPv6 = vals
		}
	case "bmc-type":
		f.BMCTypes = vals
	case "state":
		for _, s := range vals {
			st, err := ParseState(s)
			if err != nil {
				return badQuery("invalid state %q", s)
			}
			f.States = append(f.States, st)
		}
	case "labels":
		f.Labels = map[string]string{}
		for _, kv := range vals {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || !IsValidLabelName(k) || !IsValidLabelValue(val) {
				return badQuery("invalid label selector %q: want name=value", kv)
			}
			f.Labels[k] = val
		}
	}
	return nil
}

// Values renders q as URL parameters, the inverse of ParseQuery.
func (q *Query) Values() url.Values {
	v := url.Values{}
	q.Has.addTo(v, "")
	q.Not.addTo(v, "without-")
	return v
}

func (f *Filter) addTo(v url.Values, prefix string) {
	add := func(name string, vals []string) {
		if vals != nil {
			v.Set(prefix+name, strings.Join(vals, ","))
		}
	}
	add("serial", f.Serials)
	if f.Racks != nil {
		racks := make([]string, len(f.Racks))
		for i, r := range f.Racks {
			racks[i] = strconv.FormatUint(uint64(r), 10)
		}
		add("rack", racks)
	}
	add("role", f.Roles)
	add("ipv4", f.IPv4)
	add("ipv6", f.IPv6)
	add("bmc-type", f.BMCTypes)
	if f.States != nil {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		add("state", states)
	}
	if f.Labels != nil {
		pairs := make([]string, 0, len(f.Labels))
		for k, val := range f.Labels {
			pairs = append(pairs, k+"="+val)
		}
		slices.Sort(pairs)
		add("labels", pairs)
	}
}
