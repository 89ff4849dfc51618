package sabakan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLabels bounds the labels of one machine, so that a machine record
// always fits in one etcd request.
const MaxLabels = 128

// DecodeMachineSpecs decodes and validates the body of POST /machines: a JSON
// array of MachineSpec. Fields the server assigns (index-in-rack, addresses,
// register-date) are cleared. It rejects an empty array, trailing data, a
// serial given twice and two boot machines for one rack; every error wraps
// ErrBadRequest, except duplicates, which wrap ErrConflict (the reference's
// status for them).
func DecodeMachineSpecs(data []byte) ([]MachineSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var specs []MachineSpec
	if err := dec.Decode(&specs); err != nil {
		return nil, fmt.Errorf("%w: machines: %s", ErrBadRequest, jsonProblem(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: machines: unexpected data after the JSON array", ErrBadRequest)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: machines: want a non-empty JSON array of machine specs", ErrBadRequest)
	}
	seen := make(map[string]int, len(specs))
	boots := map[uint]string{}
	for i := range specs {
		s := &specs[i]
		s.IndexInRack = 0
		s.IPv4, s.IPv6 = nil, nil
		s.BMC.IPv4, s.BMC.IPv6 = "", ""
		s.RegisterDate = time.Time{}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("machines[%d]: %w", i, err)
		}
		if len(s.Labels) > MaxLabels {
			return nil, fmt.Errorf("%w: machines[%d]: machine %s has %d labels, at most %d are allowed", ErrBadRequest, i, s.Serial, len(s.Labels), MaxLabels)
		}
		if j, dup := seen[s.Serial]; dup {
			return nil, fmt.Errorf("%w: machines[%d]: serial %s is also machines[%d]", ErrConflict, i, s.Serial, j)
		}
		seen[s.Serial] = i
		if s.Role == RoleBoot {
			if other, dup := boots[s.Rack]; dup {
				return nil, fmt.Errorf("%w: machines[%d]: rack %d gets two boot servers, %s and %s", ErrConflict, i, s.Rack, other, s.Serial)
			}
			boots[s.Rack] = s.Serial
		}
	}
	return specs, nil
}

// jsonProblem describes a JSON decoding error without Go type names where a
// plainer message exists.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tim *time.ParseError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s here: want an array of objects", typ.Value)
	case errors.As(err, &tim):
		return fmt.Sprintf("invalid date %q: want RFC 3339, e.g. 2030-01-02T00:00:00Z", tim.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	}
	return err.Error()
}
