package web

import (
	"errors"
	"fmt"
	"strings"
)

// The cost of a GraphQL query, estimated before it runs.
//
// graphql-go limits a query's depth but not its breadth: aliases repeat a
// field as often as the 1 MiB body allows, and each searchMachines returns
// every machine, so one request of 10,000 aliases of searchMachines held
// gigabytes. Before executing a query the server parses it here (graphql-go
// keeps its parser internal), expands its fragments and counts: the fields
// at the root, the searchMachines among them, all fields, and an estimate of
// the values the answer holds — each field is one value, times the size of
// the lists it is in: searchMachines the visible machines, labels and ipv4
// the most any machine has, introspection lists their size in the schema.
// A query over any limit is refused with 400 before anything runs.

// gqlLimits are the limits of one GraphQL request.
type gqlLimits struct {
	rootFields int   // fields at the root (aliases count)
	searches   int   // searchMachines at the root
	fields     int   // fields in the operation, fragments expanded
	values     int64 // estimated values in the answer (see gqlCost)
}

// gqlCost is what a query asks for.
type gqlCost struct {
	rootFields, searches, fields int64
	values                       int64
}

// errQueryTooComplex wraps the refusal of a query over the limits.
var errQueryTooComplex = errors.New("query too complex")

// errQueryLimit is a parse beyond the parser's own bounds (nesting): such a
// query is refused, not handed to graphql-go.
var errQueryLimit = errors.New("query too deep to parse")

// check returns an error wrapping errQueryTooComplex when c is over l.
func (c gqlCost) check(l gqlLimits, machines int) error {
	switch {
	case c.searches > int64(l.searches):
		return fmt.Errorf("%w: %d searchMachines fields, at most %d per request", errQueryTooComplex, c.searches, l.searches)
	case c.rootFields > int64(l.rootFields):
		return fmt.Errorf("%w: %d fields at the root, at most %d per request", errQueryTooComplex, c.rootFields, l.rootFields)
	case c.fields > int64(l.fields):
		return fmt.Errorf("%w: %d fields with fragments expanded, at most %d per request", errQueryTooComplex, c.fields, l.fields)
	case c.values > l.values:
		return fmt.Errorf("%w: the answer is estimated at %d values (fields times the machines and list entries they repeat for; %d machines), at most %d per request: ask for fewer fields or fewer searches",
			errQueryTooComplex, c.values, machines, l.values)
	}
	return nil
}

// gqlMultipliers give, by field name, how many entries a list field has at
// most; other fields are single.
type gqlMultipliers map[string]int64

// saturating arithmetic: estimates of hostile queries overflow otherwise.
const gqlCostCap = int64(1) << 53

func satAdd(a, b int64) int64 { return min(a+b, gqlCostCap) }

func satMul(a, b int64) int64 {
	if a != 0 && b > gqlCostCap/a {
		return gqlCostCap
	}
	return min(a*b, gqlCostCap)
}

// estimateGraphQL measures the operation of query that graphql-go would run
// (the one named operationName, or the only one). It returns a zero cost
// when no operation would run (graphql-go then answers the error), an error
// wrapping errQueryLimit for queries beyond the parser's bounds, and other
// errors for queries it cannot parse or measure (graphql-go reports those
// better: unknown fragments, cycles, syntax).
func estimateGraphQL(query, operationName string, mult gqlMultipliers) (gqlCost, error) {
	doc, err := parseGraphQL(query)
	if err != nil {
		return gqlCost{}, err
	}
	var op *gqlOperation
	for i := range doc.ops {
		o := &doc.ops[i]
		if (operationName == "" && len(doc.ops) == 1) || (operationName != "" && o.name == operationName) {
			op = o
		}
	}
	if op == nil {
		return gqlCost{}, nil
	}
	m := &gqlMeasurer{doc: doc, mult: mult, memo: map[string]gqlCost{}, active: map[string]bool{}}
	return m.set(op.sels)
}

type gqlMeasurer struct {
	doc    *gqlDocument
	mult   gqlMultipliers
	memo   map[string]gqlCost
	active map[string]bool
}

// set measures a selection set: rootFields and searches count its own
// fields (with those of fragments spread into it), fields and values all.
func (m *gqlMeasurer) set(sels []gqlSelection) (gqlCost, error) {
	var c gqlCost
	add := func(d gqlCost) {
		c.rootFields = satAdd(c.rootFields, d.rootFields)
		c.searches = satAdd(c.searches, d.searches)
		c.fields = satAdd(c.fields, d.fields)
		c.values = satAdd(c.values, d.values)
	}
	for _, s := range sels {
		switch s.kind {
		case gqlField:
			sub, err := m.set(s.sels)
			if err != nil {
				return gqlCost{}, err
			}
			n := int64(1)
			if k, ok := m.mult[s.name]; ok {
				n = max(k, 1)
			}
			f := gqlCost{rootFields: 1, fields: satAdd(1, sub.fields), values: satMul(n, satAdd(1, sub.values))}
			if s.name == "searchMachines" {
				f.searches = 1
			}
			add(f)
		case gqlInline:
			sub, err := m.set(s.sels)
			if err != nil {
				return gqlCost{}, err
			}
			add(sub)
		case gqlSpread:
			sub, err := m.fragment(s.name)
			if err != nil {
				return gqlCost{}, err
			}
			add(sub)
		}
	}
	return c, nil
}

func (m *gqlMeasurer) fragment(name string) (gqlCost, error) {
	if c, ok := m.memo[name]; ok {
		return c, nil
	}
	sels, ok := m.doc.fragments[name]
	if !ok {
		return gqlCost{}, fmt.Errorf("unknown fragment %s", name)
	}
	if m.active[name] {
		return gqlCost{}, fmt.Errorf("fragment %s spreads itself", name)
	}
	m.active[name] = true
	c, err := m.set(sels)
	delete(m.active, name)
	if err == nil {
		m.memo[name] = c
	}
	return c, err
}

// A GraphQL executable document, reduced to what costs: the selections of
// its operations and fragments. Arguments, variables, directives and type
// conditions are skipped.
type gqlDocument struct {
	ops       []gqlOperation
	fragments map[string][]gqlSelection
}

type gqlOperation struct {
	kind string // query, mutation, subscription; "" for the shorthand query
	name string
	sels []gqlSelection
}

type gqlSelectionKind int

const (
	gqlField  gqlSelectionKind = iota // name: the field's name (not its alias)
	gqlSpread                         // name: the fragment's
	gqlInline
)

type gqlSelection struct {
	kind gqlSelectionKind
	name string
	sels []gqlSelection
	// For the fast path of searchMachines (gqlfast.go): a field's alias,
	// whether it has arguments or directives (any selection), and the
	// offsets of its selection set in the query, from "{" to after "}".
	alias            string
	args, directives bool
	setStart, setEnd int
}

// gqlMaxNesting bounds the nesting of selection sets and values the parser
// follows; graphql-go refuses queries deeper than 12 fields anyway.
const gqlMaxNesting = 64

// parseGraphQL parses an executable document (GraphQL's grammar, October
// 2021 edition, without validation).
func parseGraphQL(query string) (*gqlDocument, error) {
	p := &gqlParser{lex: gqlLexer{src: query}}
	if err := p.next(); err != nil {
		return nil, err
	}
	doc := &gqlDocument{fragments: map[string][]gqlSelection{}}
	for p.tok.kind != tokEOF {
		switch {
		case p.is(tokPunct, "{"):
			sels, err := p.selectionSet(0)
			if err != nil {
				return nil, err
			}
			doc.ops = append(doc.ops, gqlOperation{sels: sels})
		case p.is(tokName, "query"), p.is(tokName, "mutation"), p.is(tokName, "subscription"):
			op := gqlOperation{kind: p.tok.text}
			if err := p.next(); err != nil {
				return nil, err
			}
			if p.tok.kind == tokName {
				op.name = p.tok.text
				if err := p.next(); err != nil {
					return nil, err
				}
			}
			if p.is(tokPunct, "(") {
				if err := p.skipBalanced(); err != nil {
					return nil, err
				}
			}
			if err := p.directives(); err != nil {
				return nil, err
			}
			sels, err := p.selectionSet(0)
			if err != nil {
				return nil, err
			}
			op.sels = sels
			doc.ops = append(doc.ops, op)
		case p.is(tokName, "fragment"):
			if err := p.next(); err != nil {
				return nil, err
			}
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			if !p.is(tokName, "on") {
				return nil, p.errorf("expected \"on\" after fragment %s", name)
			}
			if err := p.next(); err != nil {
				return nil, err
			}
			if _, err := p.name(); err != nil {
				return nil, err
			}
			if err := p.directives(); err != nil {
				return nil, err
			}
			sels, err := p.selectionSet(0)
			if err != nil {
				return nil, err
			}
			if _, dup := doc.fragments[name]; dup {
				return nil, fmt.Errorf("fragment %s defined twice", name)
			}
			doc.fragments[name] = sels
		default:
			return nil, p.errorf("unexpected %q", p.tok.text)
		}
	}
	return doc, nil
}

type gqlParser struct {
	lex gqlLexer
	tok gqlToken
	// closed is the offset after the "}" of the last selection set parsed.
	closed int
}

func (p *gqlParser) next() error {
	t, err := p.lex.next()
	p.tok = t
	return err
}

func (p *gqlParser) is(kind gqlTokenKind, text string) bool {
	return p.tok.kind == kind && p.tok.text == text
}

func (p *gqlParser) errorf(format string, args ...any) error {
	return fmt.Errorf("graphql: offset %d: %s", p.tok.pos, fmt.Sprintf(format, args...))
}

func (p *gqlParser) name() (string, error) {
	if p.tok.kind != tokName {
		return "", p.errorf("expected a name, found %q", p.tok.text)
	}
	n := p.tok.text
	return n, p.next()
}

// skipBalanced skips from an opening bracket to its closing one.
func (p *gqlParser) skipBalanced() error {
	depth := 0
	for {
		if p.tok.kind == tokEOF {
			return p.errorf("unclosed bracket")
		}
		if p.tok.kind == tokPunct {
			switch p.tok.text {
			case "(", "[", "{":
				if depth++; depth > gqlMaxNesting {
					return fmt.Errorf("%w: values nested more than %d levels", errQueryLimit, gqlMaxNesting)
				}
			case ")", "]", "}":
				depth--
			}
		}
		if err := p.next(); err != nil {
			return err
		}
		if depth == 0 {
			return nil
		}
	}
}

// directives skips directives: @name(arguments).
func (p *gqlParser) directives() error {
	for p.is(tokPunct, "@") {
		if err := p.next(); err != nil {
			return err
		}
		if _, err := p.name(); err != nil {
			return err
		}
		if p.is(tokPunct, "(") {
			if err := p.skipBalanced(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *gqlParser) selectionSet(depth int) ([]gqlSelection, error) {
	if depth >= gqlMaxNesting {
		return nil, fmt.Errorf("%w: selections nested more than %d levels", errQueryLimit, gqlMaxNesting)
	}
	if !p.is(tokPunct, "{") {
		return nil, p.errorf("expected \"{\", found %q", p.tok.text)
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	var sels []gqlSelection
	for !p.is(tokPunct, "}") {
		s, err := p.selection(depth)
		if err != nil {
			return nil, err
		}
		sels = append(sels, s)
	}
	if len(sels) == 0 {
		return nil, p.errorf("empty selection set")
	}
	p.closed = p.tok.pos + 1
	return sels, p.next()
}

func (p *gqlParser) selection(depth int) (gqlSelection, error) {
	if p.is(tokPunct, "...") {
		if err := p.next(); err != nil {
			return gqlSelection{}, err
		}
		if p.tok.kind == tokName && p.tok.text != "on" {
			name := p.tok.text
			if err := p.next(); err != nil {
				return gqlSelection{}, err
			}
			return gqlSelection{kind: gqlSpread, name: name, directives: p.is(tokPunct, "@")}, p.directives()
		}
		if p.is(tokName, "on") {
			if err := p.next(); err != nil {
				return gqlSelection{}, err
			}
			if _, err := p.name(); err != nil {
				return gqlSelection{}, err
			}
		}
		dirs := p.is(tokPunct, "@")
		if err := p.directives(); err != nil {
			return gqlSelection{}, err
		}
		sels, err := p.selectionSet(depth + 1)
		return gqlSelection{kind: gqlInline, sels: sels, directives: dirs}, err
	}
	name, err := p.name()
	if err != nil {
		return gqlSelection{}, err
	}
	s := gqlSelection{kind: gqlField}
	if p.is(tokPunct, ":") { // name was the alias
		if err := p.next(); err != nil {
			return gqlSelection{}, err
		}
		s.alias = name
		if name, err = p.name(); err != nil {
			return gqlSelection{}, err
		}
	}
	s.name = name
	if p.is(tokPunct, "(") {
		s.args = true
		if err := p.skipBalanced(); err != nil {
			return gqlSelection{}, err
		}
	}
	s.directives = p.is(tokPunct, "@")
	if err := p.directives(); err != nil {
		return gqlSelection{}, err
	}
	if p.is(tokPunct, "{") {
		s.setStart = p.tok.pos
		s.sels, err = p.selectionSet(depth + 1)
		s.setEnd = p.closed
	}
	return s, err
}

type gqlTokenKind int

const (
	tokEOF gqlTokenKind = iota
	tokPunct
	tokName
	tokValue // a number or a string
)

type gqlToken struct {
	kind gqlTokenKind
	text string
	pos  int
}

// gqlLexer splits a document into tokens, dropping ignored ones (white
// space, commas, comments, byte order marks).
type gqlLexer struct {
	src string
	pos int
}

func (l *gqlLexer) next() (gqlToken, error) {
	l.skipIgnored()
	if l.pos == len(l.src) {
		return gqlToken{kind: tokEOF, pos: l.pos}, nil
	}
	return l.token()
}

func (l *gqlLexer) skipIgnored() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			l.pos++
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' && l.src[l.pos] != '\r' {
				l.pos++
			}
		case strings.HasPrefix(l.src[l.pos:], "\ufeff"):
			l.pos += len("\ufeff")
		default:
			return
		}
	}
}

func isNameStart(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func (l *gqlLexer) token() (gqlToken, error) {
	start := l.pos
	c := l.src[l.pos]
	switch {
	case c == '.':
		// "...", whose dots graphql-go lets ignored tokens separate.
		for dots := 1; ; dots++ {
			l.pos++
			if dots == 3 {
				return gqlToken{tokPunct, "...", start}, nil
			}
			l.skipIgnored()
			if l.pos == len(l.src) || l.src[l.pos] != '.' {
				return gqlToken{}, fmt.Errorf("graphql: offset %d: expected \"...\"", start)
			}
		}
	case strings.IndexByte("!$&()[]{}:=@|", c) >= 0:
		l.pos++
		return gqlToken{tokPunct, l.src[start:l.pos], start}, nil
	case isNameStart(c):
		for l.pos < len(l.src) && isNameChar(l.src[l.pos]) {
			l.pos++
		}
		return gqlToken{tokName, l.src[start:l.pos], start}, nil
	case c == '-' || c >= '0' && c <= '9':
		l.pos++
		for l.pos < len(l.src) {
			d := l.src[l.pos]
			if isNameChar(d) || d == '.' || (d == '+' || d == '-') && (l.src[l.pos-1] == 'e' || l.src[l.pos-1] == 'E') {
				l.pos++
				continue
			}
			break
		}
		return gqlToken{tokValue, l.src[start:l.pos], start}, nil
	case strings.HasPrefix(l.src[l.pos:], `"""`):
		l.pos += 3
		for l.pos < len(l.src) {
			switch {
			case strings.HasPrefix(l.src[l.pos:], `\"""`):
				l.pos += 4
			case strings.HasPrefix(l.src[l.pos:], `"""`):
				l.pos += 3
				return gqlToken{tokValue, l.src[start:l.pos], start}, nil
			default:
				l.pos++
			}
		}
		return gqlToken{}, fmt.Errorf("graphql: offset %d: unterminated block string", start)
	case c == '"':
		l.pos++
		for l.pos < len(l.src) {
			switch l.src[l.pos] {
			case '\\':
				l.pos += 2
			case '"':
				l.pos++
				return gqlToken{tokValue, l.src[start:l.pos], start}, nil
			case '\n', '\r':
				return gqlToken{}, fmt.Errorf("graphql: offset %d: unterminated string", start)
			default:
				l.pos++
			}
		}
		return gqlToken{}, fmt.Errorf("graphql: offset %d: unterminated string", start)
	}
	return gqlToken{}, fmt.Errorf("graphql: offset %d: unexpected character %q", start, c)
}
