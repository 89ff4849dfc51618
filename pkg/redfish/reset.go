package redfish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// reset is the ComputerSystem.Reset action. It answers 204 once the System
// has done the reset.
func (h *handler) reset(x *exchange) error {
	body, err := readBody(x)
	if err != nil {
		return err
	}
	t, err := parseReset(body, h.allowed)
	if err != nil {
		return err
	}
	if err := h.system.Reset(x.r.Context(), t); err != nil {
		return fmt.Errorf("reset %s: %w", t, err)
	}
	x.w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseReset decides a Reset action's request body: the reset type it asks
// for, or the *apiError to answer with. As everywhere in Redfish, parameter
// names are case-sensitive; annotations ("@…") are ignored, other parameters
// refused. An empty body lacks the ResetType.
func parseReset(body []byte, allowed []ResetType) (ResetType, error) {
	params, err := parseObject(body)
	if err != nil {
		return "", err
	}
	var unknown []string
	for k := range params {
		if k != "ResetType" && !strings.HasPrefix(k, "@") {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return "", &apiError{kind: errParameterUnknown, args: []string{resetAction, short(unknown[0])}}
	}
	raw, ok := params["ResetType"]
	if !ok || string(raw) == "null" {
		return "", &apiError{kind: errParameterMissing, args: []string{resetAction, "ResetType"}}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &apiError{kind: errParameterType, args: []string{short(string(raw)), "ResetType", resetAction}}
	}
	t := ResetType(s)
	if !slices.Contains(allowed, t) {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = string(a)
		}
		return "", &apiError{
			kind:   errParameterNotSupported,
			args:   []string{short(s), resetAction},
			detail: fmt.Sprintf("The ResetType %q is not allowed; allowed: %s.", short(s), strings.Join(names, ", ")),
		}
	}
	return t, nil
}

// parseObject returns the members of the JSON object body, refusing anything
// else and duplicate members (which json.Unmarshal would silently resolve).
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	params := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		return params, nil
	}
	malformed := &apiError{kind: errMalformedJSON}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, malformed
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed
		}
		key, ok := tok.(string)
		if !ok {
			return nil, malformed
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, malformed
		}
		if _, dup := params[key]; dup {
			return nil, &apiError{kind: errMalformedJSON, detail: fmt.Sprintf("The parameter %q appears more than once.", short(key))}
		}
		params[key] = bytes.TrimSpace(v)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, malformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed
	}
	return params, nil
}

// short cuts what a client sent to a length fit to be echoed in a message.
func short(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
