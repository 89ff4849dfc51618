package sabakan

import (
	"errors"
	"net/url"
	"testing"
)

func TestQuery(t *testing.T) {
	c := referenceIPAM()
	mk := func(serial string, rack uint, idx uint, role string, state MachineState, labels map[string]string) *Machine {
		m := NewMachine(MachineSpec{Serial: serial, Rack: rack, IndexInRack: idx, Role: role, Labels: labels, BMC: MachineBMC{Type: "IPMI-2.0"}}, testTime)
		m.Status.State = state
		c.Assign(m)
		return m
	}
	machines := []*Machine{
		mk("a", 0, 3, "boot", StateHealthy, map[string]string{"product": "R640", "dc": "tokyo"}),
		mk("b", 0, 4, "cs", StateHealthy, map[string]string{"product": "R640"}),
		mk("c", 1, 4, "cs", StateUnreachable, map[string]string{"product": "R740", "dc": "tokyo"}),
		mk("d", 2, 5, "ss", StateRetired, nil),
	}
	tests := []struct {
		query string
		want  string
	}{
		{"", "abcd"},
		{"serial=a,c", "ac"},
		{"rack=0", "ab"},
		{"rack=0&role=cs", "b"},
		{"without-rack=0", "cd"},
		{"role=cs,ss&without-state=retired", "bc"},
		{"labels=product=R640", "ab"},
		{"labels=product=R640,dc=tokyo", "a"},
		{"without-labels=product=R640,dc=tokyo", "bcd"},
		{"ipv4=10.69.0.68", "b"},
		{"ipv4=10.69.0.4,10.69.0.3", "ab"},
		{"without-ipv4=10.69.0.4", "acd"},
		{"state=healthy&state=unreachable", "abc"},
		{"bmc-type=IPMI-2.0", "abcd"},
		{"without-bmc-type=IPMI-2.0", ""},
		{"rack=", "abcd"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q, err := ParseQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, m := range machines {
				if q.Match(m) {
					got += m.Spec.Serial
				}
			}
			if got != tt.want {
				t.Errorf("matched %q, want %q", got, tt.want)
			}
			// Values round-trips.
			q2, err := ParseQuery(q.Values())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range machines {
				if q.Match(m) != q2.Match(m) {
					t.Errorf("round trip %q changes the match of %s", q.Values().Encode(), m.Spec.Serial)
				}
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, query := range []string{
		"rack=x", "rack=-1", "state=sleeping", "ipv4=10.0.0", "ipv4=fd00::1", "ipv6=10.0.0.1",
		"labels=novalue", "labels=a b=c", "rack=1&without-rack=2", "serials=a", "without-foo=1",
	} {
		t.Run(query, func(t *testing.T) {
			v, _ := url.ParseQuery(query)
			if _, err := ParseQuery(v); !errors.Is(err, ErrBadRequest) {
				t.Errorf("err = %v, want ErrBadRequest", err)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"rack=0&role=cs", "labels=a=b,c=d", "without-state=retired", "ipv4=10.0.0.1,10.0.0.2", "%zz"} {
		f.Add(s)
	}
	m := NewMachine(MachineSpec{Serial: "a", Role: "cs", Labels: map[string]string{"a": "b"}}, testTime)
	referenceIPAM().Assign(m)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		q2, err := ParseQuery(q.Values())
		if err != nil {
			t.Fatalf("Values() of an accepted query is rejected: %v", err)
		}
		if q.Match(m) != q2.Match(m) {
			t.Fatalf("round trip changes the match")
		}
	})
}
