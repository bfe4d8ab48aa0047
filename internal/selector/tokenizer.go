package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokEOF        tokKind = iota
	tokLabel              // a label key; val holds it
	tokString             // a quoted string; val holds the contents
	tokHas                // has(key); val holds the key
	tokAll                // all()
	tokGlobal             // global()
	tokLParen             // (
	tokRParen             // )
	tokLBrace             // {
	tokRBrace             // }
	tokComma              // ,
	tokNot                // !
	tokAnd                // &&
	tokOr                 // ||
	tokEq                 // ==
	tokNe                 // !=
	tokIn                 // in
	tokNotIn              // not in
	tokContains           // contains
	tokStartsWith         // starts with
	tokEndsWith           // ends with
	tokIllegal            // a character that starts no token; val holds it
)

// token is one lexical token and the byte offset where it starts.
type token struct {
	kind tokKind
	pos  int
	val  string
}

// describe renders a token for an error message ("found ...").
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of selector"
	case tokLabel:
		return fmt.Sprintf("label %q", t.val)
	case tokString:
		return fmt.Sprintf("string %q", t.val)
	case tokHas:
		return "has(" + t.val + ")"
	case tokIllegal:
		return describeChar(t.val)
	}
	return fmt.Sprintf("%q", tokText[t.kind])
}

// tokText is the source text of fixed tokens, for error messages.
var tokText = [...]string{
	tokAll: "all()", tokGlobal: "global()",
	tokLParen: "(", tokRParen: ")", tokLBrace: "{", tokRBrace: "}", tokComma: ",",
	tokNot: "!", tokAnd: "&&", tokOr: "||", tokEq: "==", tokNe: "!=",
	tokIn: "in", tokNotIn: "not in", tokContains: "contains",
	tokStartsWith: "starts with", tokEndsWith: "ends with",
}

// callTokens are the function-like terms, recognised only where a term
// may start. Static data: no init work.
var callTokens = [...]struct {
	prefix string
	kind   tokKind
}{{"has(", tokHas}, {"all(", tokAll}, {"global(", tokGlobal}}

// wordOperators are the operators spelled as words, recognised only right
// after a label, in the order upstream tries them.
var wordOperators = [...]struct {
	words []string
	kind  tokKind
}{
	{[]string{"contains"}, tokContains},
	{[]string{"starts", "with"}, tokStartsWith},
	{[]string{"ends", "with"}, tokEndsWith},
	{[]string{"not", "in"}, tokNotIn},
	{[]string{"in"}, tokIn},
}

// lexer splits a selector into tokens on demand. Like upstream's tokenizer
// it is context sensitive in one place: right after a label, a word is an
// operator (in, not in, contains, starts with, ends with), never another
// label.
type lexer struct {
	src  string
	pos  int
	prev tokKind // kind of the last token returned
}

// next returns the next token, or a syntax error.
func (l *lexer) next() (token, *SyntaxError) {
	t, err := l.scan()
	if err == nil {
		l.prev = t.kind
	}
	return t, err
}

func (l *lexer) errorf(pos int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Selector: l.src, Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
}

func (l *lexer) scan() (token, *SyntaxError) {
	l.skipSpace()
	start := l.pos
	if start == len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	rest := l.src[start:]
	fixed := func(k tokKind, n int) (token, *SyntaxError) {
		l.pos += n
		return token{kind: k, pos: start}, nil
	}
	switch c := rest[0]; c {
	case '(':
		return fixed(tokLParen, 1)
	case ')':
		return fixed(tokRParen, 1)
	case '{':
		return fixed(tokLBrace, 1)
	case '}':
		return fixed(tokRBrace, 1)
	case ',':
		return fixed(tokComma, 1)
	case '"', '\'':
		end := strings.IndexByte(rest[1:], c)
		if end < 0 {
			return token{}, l.errorf(start, "unterminated string (expected a closing %c)", c)
		}
		l.pos += end + 2
		return token{kind: tokString, pos: start, val: rest[1 : end+1]}, nil
	case '=':
		if strings.HasPrefix(rest, "==") {
			return fixed(tokEq, 2)
		}
		return token{}, l.errorf(start, `expected "==", found "="`)
	case '!':
		if strings.HasPrefix(rest, "!=") {
			return fixed(tokNe, 2)
		}
		return fixed(tokNot, 1)
	case '&':
		if strings.HasPrefix(rest, "&&") {
			return fixed(tokAnd, 2)
		}
		return token{}, l.errorf(start, `expected "&&", found "&"`)
	case '|':
		if strings.HasPrefix(rest, "||") {
			return fixed(tokOr, 2)
		}
		return token{}, l.errorf(start, `expected "||", found "|"`)
	}

	if l.prev == tokLabel {
		return l.scanOperator()
	}
	for _, f := range callTokens {
		if !strings.HasPrefix(rest, f.prefix) {
			continue
		}
		l.pos += len(f.prefix)
		l.skipSpace()
		var key string
		if f.kind == tokHas {
			var err *SyntaxError
			if key, err = l.scanLabel(`a label name after "has("`); err != nil {
				return token{}, err
			}
			l.skipSpace()
		}
		if l.pos == len(l.src) || l.src[l.pos] != ')' {
			return token{}, l.errorf(l.pos, "expected \")\" to close %q, found %s", f.prefix, l.describeAt(l.pos))
		}
		l.pos++
		return token{kind: f.kind, pos: start, val: key}, nil
	}
	if !isLabelChar(rest[0]) {
		// Let the parser report it: it knows what it expected here.
		_, n := utf8.DecodeRuneInString(rest)
		l.pos += n
		return token{kind: tokIllegal, pos: start, val: rest[:n]}, nil
	}
	key, err := l.scanLabel("a label")
	if err != nil {
		return token{}, err
	}
	return token{kind: tokLabel, pos: start, val: key}, nil
}

// scanLabel consumes a label key at l.pos. want names what the caller
// expected there, for the error message.
func (l *lexer) scanLabel(want string) (string, *SyntaxError) {
	start := l.pos
	end := start
	for end < len(l.src) && isLabelChar(l.src[end]) {
		end++
	}
	switch {
	case end == start:
		return "", l.errorf(start, "expected %s, found %s", want, l.describeAt(start))
	case end-start > MaxLabelLength:
		return "", l.errorf(start, "label is %d bytes long, the limit is %d", end-start, MaxLabelLength)
	}
	l.pos = end
	return l.src[start:end], nil
}

// scanOperator consumes a word operator after a label. Multi-word operators
// allow any run of spaces and tabs (including none) between their words;
// the last word must end at a word boundary.
func (l *lexer) scanOperator() (token, *SyntaxError) {
	start := l.pos
	for _, op := range wordOperators {
		if end, ok := matchWords(l.src, start, op.words); ok {
			l.pos = end
			return token{kind: op.kind, pos: start}, nil
		}
	}
	return token{}, l.errorf(start,
		"expected an operator (==, !=, in, not in, contains, starts with, ends with) after a label, found %s",
		l.describeAt(start))
}

// matchWords reports whether words, separated by optional blanks, appear in
// s at pos followed by a word boundary, and where they end.
func matchWords(s string, pos int, words []string) (int, bool) {
	for i, w := range words {
		if i > 0 {
			for pos < len(s) && isSpace(s[pos]) {
				pos++
			}
		}
		if !strings.HasPrefix(s[pos:], w) {
			return 0, false
		}
		pos += len(w)
	}
	if pos < len(s) && isLabelChar(s[pos]) {
		return 0, false
	}
	return pos, true
}

// describeAt renders what is at offset pos for an error message.
func (l *lexer) describeAt(pos int) string {
	if pos >= len(l.src) {
		return "end of selector"
	}
	if isLabelChar(l.src[pos]) {
		end := pos
		for end < len(l.src) && isLabelChar(l.src[end]) && end-pos < 32 {
			end++
		}
		return fmt.Sprintf("%q", l.src[pos:end])
	}
	return describeChar(l.src[pos:])
}

// describeChar renders the first character of s, or its first byte if s
// does not start with valid UTF-8.
func describeChar(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[0])
	}
	return fmt.Sprintf("%q", r)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func isLabelChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}
