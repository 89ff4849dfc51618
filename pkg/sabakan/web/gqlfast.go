package web

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openneco/neco/pkg/sabakan"
)

// The fast path of searchMachines.
//
// graphql-go resolves every field of every machine through reflection: the
// Kubernetes engine's query over 10,000 machines is ~200,000 resolver calls
// and took ~625 ms. For the common shape of query — one searchMachines
// (alias and arguments allowed, as literals or variables) whose selection
// is plain fields (no aliases, arguments, directives, fragments or
// __typename below it) — graphql-go still validates the query and coerces
// the arguments, but runs it with the selection replaced by { __typename }
// and the resolver handing the machines it found to this code instead of
// to graphql-go; this code then writes the answer straight from the
// machines. Anything else, and any error, takes graphql-go's whole path, so
// the answers are the same bytes (tested against graphql-go for every
// field).

// gqlCaptureKey marks a context whose searchMachines hands its result over.
type gqlCaptureKey struct{}

type gqlCapture struct {
	machines []*gqlMachine
	done     bool
}

// gqlFields are the schema's fields reachable from Machine, by type: the
// type of an object field, "" for a leaf.
var gqlFields = map[string]map[string]string{
	"Machine":       {"spec": "MachineSpec", "status": "MachineStatus", "info": "MachineInfo"},
	"MachineSpec":   {"serial": "", "labels": "Label", "rack": "", "indexInRack": "", "role": "", "ipv4": "", "registerDate": "", "retireDate": "", "bmc": "BMC"},
	"Label":         {"name": "", "value": ""},
	"BMC":           {"bmcType": "", "ipv4": ""},
	"MachineStatus": {"state": "", "timestamp": "", "duration": ""},
	"MachineInfo":   {"network": "NetworkInfo", "bmc": "BMCInfo"},
	"NetworkInfo":   {"ipv4": "NICConfig"},
	"BMCInfo":       {"ipv4": "NICConfig"},
	"NICConfig":     {"address": "", "netmask": "", "maskbits": "", "gateway": ""},
}

// gqlPlain reports whether sels, of type typ, are plain fields the fast
// path writes.
func gqlPlain(typ string, sels []gqlSelection) bool {
	fields := gqlFields[typ]
	seen := map[string]bool{}
	for _, s := range sels {
		if s.kind != gqlField || s.alias != "" || s.args || s.directives || seen[s.name] {
			return false
		}
		seen[s.name] = true
		sub, ok := fields[s.name]
		if !ok || (sub == "") != (s.sels == nil) {
			return false
		}
		if sub != "" && !gqlPlain(sub, s.sels) {
			return false
		}
	}
	return true
}

// fastSearch answers the query when it has the fast path's shape; it
// returns false, having written nothing, when graphql-go must run it.
func (s *Server) fastSearch(w http.ResponseWriter, r *http.Request, query, operationName string, variables map[string]any) bool {
	doc, err := parseGraphQL(query)
	if err != nil || len(doc.ops) != 1 || len(doc.fragments) != 0 {
		return false
	}
	op := doc.ops[0]
	if op.kind != "" && op.kind != "query" || operationName != "" && operationName != op.name || len(op.sels) != 1 {
		return false
	}
	root := op.sels[0]
	if root.kind != gqlField || root.name != "searchMachines" || root.directives || root.sels == nil || !gqlPlain("Machine", root.sels) {
		return false
	}
	capture := &gqlCapture{}
	ctx := context.WithValue(r.Context(), gqlCaptureKey{}, capture)
	reduced := query[:root.setStart] + "{ __typename }" + query[root.setEnd:]
	if resp := s.graphql.Exec(ctx, reduced, operationName, variables); len(resp.Errors) > 0 || !capture.done {
		return false
	}
	key := root.name
	if root.alias != "" {
		key = root.alias
	}
	b := make([]byte, 0, 64+len(capture.machines)*gqlSelectionSize(root.sels))
	b = append(b, `{"data":{`...)
	b = appendJSONString(b, key)
	b = append(b, ":["...)
	for i, m := range capture.machines {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMachine(b, m.m, root.sels)
	}
	b = append(b, "]}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return true
}

// gqlSelectionSize guesses the bytes of one machine's answer.
func gqlSelectionSize(sels []gqlSelection) int {
	n := 2
	for _, s := range sels {
		n += len(s.name) + 24
		if s.sels != nil {
			n += gqlSelectionSize(s.sels) * 2
		}
	}
	return n
}

// appendObject writes {"name":value,...} for sels, each value by f.
func appendObject(b []byte, sels []gqlSelection, f func(b []byte, s *gqlSelection) []byte) []byte {
	b = append(b, '{')
	for i := range sels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, sels[i].name...) // a name: nothing to escape
		b = append(b, '"', ':')
		b = f(b, &sels[i])
	}
	return append(b, '}')
}

func appendMachine(b []byte, m *sabakan.Machine, sels []gqlSelection) []byte {
	return appendObject(b, sels, func(b []byte, s *gqlSelection) []byte {
		switch s.name {
		case "spec":
			return appendSpec(b, &m.Spec, s.sels)
		case "status":
			return appendStatus(b, &m.Status, s.sels)
		default: // info
			return appendObject(b, s.sels, func(b []byte, s *gqlSelection) []byte {
				if s.name == "network" {
					return appendObject(b, s.sels, func(b []byte, s *gqlSelection) []byte {
						b = append(b, '[')
						for i := range m.Info.Network.IPv4 {
							if i > 0 {
								b = append(b, ',')
							}
							b = appendNIC(b, &m.Info.Network.IPv4[i], s.sels)
						}
						return append(b, ']')
					})
				}
				return appendObject(b, s.sels, func(b []byte, s *gqlSelection) []byte {
					return appendNIC(b, &m.Info.BMC.IPv4, s.sels)
				})
			})
		}
	})
}

func appendSpec(b []byte, sp *sabakan.MachineSpec, sels []gqlSelection) []byte {
	return appendObject(b, sels, func(b []byte, s *gqlSelection) []byte {
		switch s.name {
		case "serial":
			return appendJSONString(b, sp.Serial)
		case "labels":
			if len(sp.Labels) == 0 {
				return append(b, "null"...)
			}
			names := make([]string, 0, len(sp.Labels))
			for k := range sp.Labels {
				names = append(names, k)
			}
			slices.Sort(names)
			b = append(b, '[')
			for i, k := range names {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendObject(b, s.sels, func(b []byte, s *gqlSelection) []byte {
					if s.name == "name" {
						return appendJSONString(b, k)
					}
					return appendJSONString(b, sp.Labels[k])
				})
			}
			return append(b, ']')
		case "rack":
			return strconv.AppendInt(b, int64(int32(sp.Rack)), 10)
		case "indexInRack":
			return strconv.AppendInt(b, int64(int32(sp.IndexInRack)), 10)
		case "role":
			return appendJSONString(b, sp.Role)
		case "ipv4":
			b = append(b, '[')
			for i, a := range sp.IPv4 {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, a)
			}
			return append(b, ']')
		case "registerDate":
			return appendDateTime(b, sp.RegisterDate)
		case "retireDate":
			return appendDateTime(b, sp.RetireDate)
		default: // bmc
			return appendObject(b, s.sels, func(b []byte, s *gqlSelection) []byte {
				if s.name == "bmcType" {
					return appendJSONString(b, sp.BMC.Type)
				}
				return appendJSONString(b, sp.BMC.IPv4)
			})
		}
	})
}

func appendStatus(b []byte, st *sabakan.MachineStatus, sels []gqlSelection) []byte {
	return appendObject(b, sels, func(b []byte, s *gqlSelection) []byte {
		switch s.name {
		case "state":
			return appendJSONString(b, strings.ToUpper(string(st.State)))
		case "timestamp":
			return appendDateTime(b, st.Timestamp)
		default: // duration
			return appendFloat(b, st.Duration)
		}
	})
}

func appendNIC(b []byte, c *sabakan.NICConfig, sels []gqlSelection) []byte {
	return appendObject(b, sels, func(b []byte, s *gqlSelection) []byte {
		switch s.name {
		case "address":
			return appendJSONString(b, c.Address)
		case "netmask":
			return appendJSONString(b, c.Netmask)
		case "maskbits":
			return strconv.AppendInt(b, int64(int32(c.MaskBits)), 10)
		default: // gateway
			return appendJSONString(b, c.Gateway)
		}
	})
}

// appendDateTime writes DateTime.MarshalJSON's answer: RFC 3339 with
// nanoseconds, in UTC (no character to escape).
func appendDateTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat writes f as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...) // encoding/json fails; graphql-go's answer would too
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s quoted as encoding/json does (HTML-safe,
// invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
