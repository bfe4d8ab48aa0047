// Package selector implements Calico's label-selector language: a tokenizer,
// a recursive-descent parser, an immutable AST with Evaluate, and the
// canonical String form used for deduplication and storage.
//
// It owns the grammar and semantics of selectors as libcalico-go
// (lib/selector) defines them, and accepts exactly the inputs upstream
// accepts, with one documented limit: parenthesised groups may nest at most
// [MaxNesting] deep. It imports nothing from the project (standard library
// only) and does no work at init time, so it is cheap to link into every
// applet of the multi-call binary.
//
// # Grammar
//
//	selector  = [ or ]                        ; empty or blank means all()
//	or        = and { "||" and }
//	and       = unary { "&&" unary }
//	unary     = { "!" } term                  ; "!" binds to the next term
//	term      = "all()" | "global()" | "has(" label ")" | "(" or ")"
//	          | label ( "==" | "!=" | "contains" | "starts with" | "ends with" ) string
//	          | label ( "in" | "not in" ) "{" [ string { "," string } [ "," ] ] "}"
//	label     = 1*512( ALPHA | DIGIT | "_" | "." | "/" | "-" )
//	string    = '"' { any byte but '"' } '"' | "'" { any byte but "'" } "'"
//
// Whitespace between tokens is spaces and tabs only (not newlines), as
// upstream. "startswith", "endswith" and "notin" are accepted without the
// inner space. Strings have no escapes. A set may be empty and may end in
// a trailing comma.
//
// # Semantics
//
// Comparisons against a label that is absent are false, except "!=" and
// "not in", which are true. global() matches every label set: upstream uses
// it to pick out non-namespaced entities, a distinction made by the caller
// (which decides what label set to evaluate), not by the expression.
//
// # Canonical form
//
// String matches upstream's canonical form byte for byte: every && and ||
// group is parenthesised, e.g. `(has(a) && b == "c")`; strings use double
// quotes unless they contain one; set members are sorted and de-duplicated;
// a run of "!" collapses to zero or one. UniqueID equals upstream's
// selector UID ("s:" + base64url(sha224("s:" + String()))).
package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
)

// Labels is a label set as selectors see it: key to value.
type Labels = map[string]string

// Selector is a parsed, immutable selector expression. It is safe for
// concurrent use.
type Selector interface {
	// Evaluate reports whether the label set matches.
	Evaluate(labels map[string]string) bool
	// String returns the canonical form (stable, used for dedup and
	// storage), e.g. `(has(a) && b == "c")`. Parse(s.String()) yields a
	// selector with the same String.
	String() string
	// UniqueID returns a short stable hash of String(), identical to
	// upstream Calico's selector UID, e.g. "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug".
	UniqueID() string
}

// MaxNesting is the deepest parenthesis nesting Parse accepts. Upstream has
// no limit; one is kept here so that hostile input cannot exhaust the stack.
const MaxNesting = 1000

// MaxLabelLength is the longest label key the tokenizer accepts (upstream's
// limit).
const MaxLabelLength = 512

// Parse parses a selector. "" and whitespace-only input are all().
func Parse(s string) (Selector, error) {
	root, err := parse(s)
	if err != nil {
		return nil, err
	}
	return &selector{root: root}, nil
}

// MustParse is like Parse but panics on error. Use it for tests and
// constants only.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// Validate returns nil if s parses. Otherwise it returns a *SyntaxError
// naming the byte offset and what was expected there.
func Validate(s string) error {
	_, err := parse(s)
	return err
}

// SyntaxError describes why a selector does not parse.
type SyntaxError struct {
	Selector string // the input as given
	Offset   int    // byte offset into Selector where the problem is
	Msg      string // what was expected (and found), e.g. `expected a quoted string`
}

// Error renders the error as `selector "<input>": <Msg> at offset <Offset>`.
// Inputs longer than 256 bytes are cut short in the message (not in the
// Selector field) to keep log lines readable.
func (e *SyntaxError) Error() string {
	sel, more := e.Selector, ""
	if len(sel) > 256 {
		sel, more = sel[:256], "..."
	}
	return fmt.Sprintf("selector %q%s: %s at offset %d", sel, more, e.Msg, e.Offset)
}

// selector is the Selector implementation: an AST root plus lazily
// computed, cached String and UniqueID.
type selector struct {
	root node

	strOnce sync.Once
	str     string
	idOnce  sync.Once
	id      string
}

func (s *selector) Evaluate(labels map[string]string) bool { return s.root.eval(labels) }

func (s *selector) String() string {
	s.strOnce.Do(func() { s.str = canonical(s.root) })
	return s.str
}

func (s *selector) UniqueID() string {
	s.idOnce.Do(func() { s.id = uniqueID(s.String()) })
	return s.id
}

// uniqueID reproduces upstream's hash.MakeUniqueID("s", canon).
func uniqueID(canon string) string {
	h := sha256.New224()
	h.Write([]byte("s:"))
	h.Write([]byte(canon))
	var sum [sha256.Size224]byte
	return "s:" + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))
}
