package selector

import (
	"slices"
	"testing"
)

// tokenize runs the lexer to the end, for tests.
func tokenize(s string) ([]token, error) {
	l := lexer{src: s}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		t.pos = 0 // positions are checked separately
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

func tk(k tokKind, v ...string) token {
	t := token{kind: k}
	if len(v) > 0 {
		t.val = v[0]
	}
	return t
}

// Ported from upstream's tokenizer_test.go; nil means a tokenizer error.
// The lexer hands characters that start no token to the parser as
// tokIllegal, so those cases are covered by TestErrors instead.
var tokenTests = []struct {
	in   string
	want []token
}{
	{`a=="b"`, []token{tk(tokLabel, "a"), tk(tokEq), tk(tokString, "b"), tk(tokEOF)}},
	{`label == "value"`, []token{tk(tokLabel, "label"), tk(tokEq), tk(tokString, "value"), tk(tokEOF)}},
	{`label contains "value"`, []token{tk(tokLabel, "label"), tk(tokContains), tk(tokString, "value"), tk(tokEOF)}},
	{`contains contains "contains"`, []token{tk(tokLabel, "contains"), tk(tokContains), tk(tokString, "contains"), tk(tokEOF)}},
	{`contains contains 'contains'`, []token{tk(tokLabel, "contains"), tk(tokContains), tk(tokString, "contains"), tk(tokEOF)}},
	{`label contains"value"`, []token{tk(tokLabel, "label"), tk(tokContains), tk(tokString, "value"), tk(tokEOF)}},
	{`label startswith "value"`, []token{tk(tokLabel, "label"), tk(tokStartsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label endswith "value"`, []token{tk(tokLabel, "label"), tk(tokEndsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label starts with "value"`, []token{tk(tokLabel, "label"), tk(tokStartsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`startswith starts with "value"`, []token{tk(tokLabel, "startswith"), tk(tokStartsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label ends with "value"`, []token{tk(tokLabel, "label"), tk(tokEndsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`endswith ends with "value"`, []token{tk(tokLabel, "endswith"), tk(tokEndsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label starts  with "value"`, []token{tk(tokLabel, "label"), tk(tokStartsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label ends  with "value"`, []token{tk(tokLabel, "label"), tk(tokEndsWith), tk(tokString, "value"), tk(tokEOF)}},
	{`label starts foo "value"`, nil},
	{`label ends foo "value"`, nil},
	{`label squiggles "value"`, nil},
	{`a not in "bar" && !has(foo) || b in c`, []token{
		tk(tokLabel, "a"), tk(tokNotIn), tk(tokString, "bar"), tk(tokAnd), tk(tokNot), tk(tokHas, "foo"),
		tk(tokOr), tk(tokLabel, "b"), tk(tokIn), tk(tokLabel, "c"), tk(tokEOF)}},
	{`has(calico/k8s_ns)`, []token{tk(tokHas, "calico/k8s_ns"), tk(tokEOF)}},
	{`has(calico/k8s_ns/role)`, []token{tk(tokHas, "calico/k8s_ns/role"), tk(tokEOF)}},
	{`has(calico/k8s_NS-.1/role)`, []token{tk(tokHas, "calico/k8s_NS-.1/role"), tk(tokEOF)}},
	{`calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"`, []token{
		tk(tokLabel, "calico/k8s_ns"), tk(tokEq), tk(tokString, "kube-system"), tk(tokAnd),
		tk(tokLabel, "k8s-app"), tk(tokEq), tk(tokString, "kube-dns"), tk(tokEOF)}},
	{`a  not  in  "bar"  &&  ! has( foo )  ||  b  in  c `, []token{
		tk(tokLabel, "a"), tk(tokNotIn), tk(tokString, "bar"), tk(tokAnd), tk(tokNot), tk(tokHas, "foo"),
		tk(tokOr), tk(tokLabel, "b"), tk(tokIn), tk(tokLabel, "c"), tk(tokEOF)}},
	{`a notin"bar"&&!has(foo)||b in"c"`, []token{
		tk(tokLabel, "a"), tk(tokNotIn), tk(tokString, "bar"), tk(tokAnd), tk(tokNot), tk(tokHas, "foo"),
		tk(tokOr), tk(tokLabel, "b"), tk(tokIn), tk(tokString, "c"), tk(tokEOF)}},
	{`a not in {}`, []token{tk(tokLabel, "a"), tk(tokNotIn), tk(tokLBrace), tk(tokRBrace), tk(tokEOF)}},
	{`a not in {"a"}`, []token{tk(tokLabel, "a"), tk(tokNotIn), tk(tokLBrace), tk(tokString, "a"), tk(tokRBrace), tk(tokEOF)}},
	{`a not in {"a","B"}`, []token{tk(tokLabel, "a"), tk(tokNotIn), tk(tokLBrace), tk(tokString, "a"),
		tk(tokComma), tk(tokString, "B"), tk(tokRBrace), tk(tokEOF)}},
	{`global()`, []token{tk(tokGlobal), tk(tokEOF)}},
	{`all()`, []token{tk(tokAll), tk(tokEOF)}},

	// More.
	{"", []token{tk(tokEOF)}},
	{" \t ", []token{tk(tokEOF)}},
	{`!!=(){},`, []token{tk(tokNot), tk(tokNe), tk(tokLParen), tk(tokRParen), tk(tokLBrace), tk(tokRBrace), tk(tokComma), tk(tokEOF)}},
	{`a in x`, []token{tk(tokLabel, "a"), tk(tokIn), tk(tokLabel, "x"), tk(tokEOF)}},
	{`a not in`, []token{tk(tokLabel, "a"), tk(tokNotIn), tk(tokEOF)}},
	{`a ends`, nil},
	{`a ==`, []token{tk(tokLabel, "a"), tk(tokEq), tk(tokEOF)}},
	{`a %`, nil},
	{`'a"b'"c'd"`, []token{tk(tokString, `a"b`), tk(tokString, "c'd"), tk(tokEOF)}},
}

func TestTokenizer(t *testing.T) {
	for _, tc := range tokenTests {
		got, err := tokenize(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("tokenize(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("tokenize(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("tokenize(%q)\n got %v\nwant %v", tc.in, got, tc.want)
		}
	}
}

func TestTokenPositions(t *testing.T) {
	l := lexer{src: ` a  not in {"x" , 'y'}&&has( k )`}
	var got []int
	for {
		tok, err := l.next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tok.pos)
		if tok.kind == tokEOF {
			break
		}
	}
	want := []int{1, 4, 11, 12, 16, 18, 21, 22, 24, 32}
	if !slices.Equal(got, want) {
		t.Errorf("positions %v, want %v", got, want)
	}
}
