package selector

import (
	"slices"
	"strings"
)

// node is one node of a parsed selector. Nodes are never mutated after
// parsing, so a tree may be shared between goroutines.
type node interface {
	// eval reports whether labels match this node.
	eval(labels Labels) bool
	// appendTo appends the canonical text of this node to b.
	appendTo(b []byte) []byte
}

// canonical renders a tree in upstream's canonical form.
func canonical(n node) string {
	return string(n.appendTo(make([]byte, 0, 64)))
}

// allNode is all(): matches everything.
type allNode struct{}

func (allNode) eval(Labels) bool         { return true }
func (allNode) appendTo(b []byte) []byte { return append(b, "all()"...) }

// globalNode is global(). Upstream uses it to select non-namespaced
// entities; that choice is made by whoever builds the label set, so as an
// expression it matches everything, exactly as upstream evaluates it.
type globalNode struct{}

func (globalNode) eval(Labels) bool         { return true }
func (globalNode) appendTo(b []byte) []byte { return append(b, "global()"...) }

// hasNode is has(key): the label is present, whatever its value.
type hasNode struct{ key string }

func (n *hasNode) eval(l Labels) bool {
	_, ok := l[n.key]
	return ok
}

func (n *hasNode) appendTo(b []byte) []byte {
	b = append(b, "has("...)
	b = append(b, n.key...)
	return append(b, ')')
}

// cmpOp is a comparison between a label's value and a string.
type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

// cmpText is the canonical spelling of each cmpOp, with its spaces.
var cmpText = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

// cmpNode is `key <op> "val"`. An absent label matches only for !=.
type cmpNode struct {
	op       cmpOp
	key, val string
}

func (n *cmpNode) eval(l Labels) bool {
	v, ok := l[n.key]
	switch n.op {
	case opEq:
		return ok && v == n.val
	case opNe:
		return !ok || v != n.val
	case opContains:
		return ok && strings.Contains(v, n.val)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.val)
	default: // opEndsWith
		return ok && strings.HasSuffix(v, n.val)
	}
}

func (n *cmpNode) appendTo(b []byte) []byte {
	b = append(b, n.key...)
	b = append(b, cmpText[n.op]...)
	return appendQuoted(b, n.val)
}

// setNode is `key in {...}` or, with not set, `key not in {...}`. vals is
// sorted and free of duplicates. An absent label matches only `not in`.
type setNode struct {
	not  bool
	key  string
	vals []string
}

func (n *setNode) eval(l Labels) bool {
	v, ok := l[n.key]
	if !ok {
		return n.not
	}
	return n.contains(v) != n.not
}

func (n *setNode) contains(v string) bool {
	if len(n.vals) <= 8 {
		return slices.Contains(n.vals, v)
	}
	_, found := slices.BinarySearch(n.vals, v)
	return found
}

func (n *setNode) appendTo(b []byte) []byte {
	b = append(b, n.key...)
	if n.not {
		b = append(b, " not in {"...)
	} else {
		b = append(b, " in {"...)
	}
	for i, v := range n.vals {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendQuoted(b, v)
	}
	return append(b, '}')
}

// notNode is !x. The parser never builds a notNode of a notNode.
type notNode struct{ x node }

func (n *notNode) eval(l Labels) bool { return !n.x.eval(l) }

func (n *notNode) appendTo(b []byte) []byte { return n.x.appendTo(append(b, '!')) }

// andNode is x && y && ...: two or more operands.
type andNode struct{ xs []node }

func (n *andNode) eval(l Labels) bool {
	for _, x := range n.xs {
		if !x.eval(l) {
			return false
		}
	}
	return true
}

func (n *andNode) appendTo(b []byte) []byte { return appendGroup(b, n.xs, " && ") }

// orNode is x || y || ...: two or more operands.
type orNode struct{ xs []node }

func (n *orNode) eval(l Labels) bool {
	for _, x := range n.xs {
		if x.eval(l) {
			return true
		}
	}
	return false
}

func (n *orNode) appendTo(b []byte) []byte { return appendGroup(b, n.xs, " || ") }

// appendGroup renders operands joined by sep inside parentheses, as
// upstream does for every && and || group (including the outermost one).
func appendGroup(b []byte, xs []node, sep string) []byte {
	b = append(b, '(')
	for i, x := range xs {
		if i > 0 {
			b = append(b, sep...)
		}
		b = x.appendTo(b)
	}
	return append(b, ')')
}

// appendQuoted quotes s with double quotes, or single quotes if s contains
// a double quote. Strings have no escapes, so s never holds both: a
// double-quoted literal cannot contain '"' and a single-quoted one cannot
// contain "'".
func appendQuoted(b []byte, s string) []byte {
	q := byte('"')
	if strings.IndexByte(s, '"') >= 0 {
		q = '\''
	}
	b = append(b, q)
	b = append(b, s...)
	return append(b, q)
}
