package selector

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

type L = map[string]string

// evalTests: selector, label sets that must match, label sets that must
// not. The first block is ported from upstream's parser_test.go.
var evalTests = []struct {
	sel        string
	match, not []L
}{
	{`a == "b"`, []L{{"a": "b"}, {"a": "b", "c": "d"}}, []L{{}, {"a": "c"}, {"c": "d"}}},
	{`a == "b" && c == "d"`, []L{{"a": "b", "c": "d"}},
		[]L{{}, {"a": "b", "c": "e"}, {"a": "c", "c": "d"}, {"c": "d"}, {"a": "b"}}},
	{`a == "b" || c == "d"`, []L{{"a": "b", "c": "d"}, {"a": "b"}, {"c": "d"}},
		[]L{{}, {"a": "e", "c": "e"}, {"c": "e"}, {"a": "e"}}},
	{`a in {"'", '"', "c"}`, []L{{"a": "c"}, {"a": `"`}, {"a": `'`}}, []L{{}, {"a": "e"}}},
	{`a not in {"'", '"', "c"}`, []L{{}, {"a": "e"}}, []L{{"a": "c"}, {"a": `"`}, {"a": `'`}}},
	{`a == 'a'`, []L{{"a": "a"}}, []L{{"a": "b"}, {}}},
	{`a == "a"`, []L{{"a": "a"}}, nil},
	{`a != "b"`, []L{{"a": "a"}}, nil},
	{`a != "a"`, []L{{}}, []L{{"a": "a"}}},
	{`a != 'a'`, nil, []L{{"a": "a"}}},
	{`a contains "a"`, []L{{"a": "a"}, {"a": "bab"}, {"a": "aaa", "b": "c"}}, []L{{}, {"a": "b"}, {"b": "aaa"}}},
	{`a starts with "a"`, []L{{"a": "a"}, {"a": "abb"}, {"a": "aaa", "b": "c"}},
		[]L{{}, {"a": "b"}, {"a": "baa"}, {"b": "aaa"}}},
	{`a ends with "a"`, []L{{"a": "a"}, {"a": "bba"}, {"a": "aaa", "b": "c"}},
		[]L{{}, {"a": "b"}, {"a": "aab"}, {"b": "aaa"}}},
	{`a in {"a"}`, []L{{"a": "a"}}, []L{{"a": "b"}}},
	{`!a in {"a"}`, []L{{"a": "b"}}, nil},
	{`a in {"a", "b"}`, []L{{"a": "a"}, {"a": "b"}}, []L{{"a": "c"}}},
	{`a not in {"d", "e"}`, []L{{"a": "a"}}, nil},
	{`a not in {"a"}`, nil, []L{{"a": "a"}}},
	{`has(a)`, []L{{"a": "b"}}, nil},
	{`has(b)`, nil, []L{{"a": "b"}}},
	{`!has(a)`, []L{{"b": "b"}}, []L{{"a": "b"}}},
	{``, []L{{}, {"a": "b"}}, nil},
	{` `, []L{{}}, nil},
	{`all()`, []L{{}}, nil},
	{` all()`, []L{{}, {"a": "b"}}, nil},
	{`global()`, []L{{}}, nil},
	{` global()`, []L{{}, {"a": "b"}}, nil},
	{`!!has(b)`, nil, []L{{"a": "b"}}},
	{`! has(a)`, nil, []L{{"a": "b"}}},
	{`!!! has(a)`, nil, []L{{"a": "b"}}},
	{`!!!has(a)`, nil, []L{{"a": "b"}}},
	{`!! ! has(a)`, nil, []L{{"a": "b"}}},
	{`! !!has(a)`, nil, []L{{"a": "b"}}},
	{`a == 'a1' && b == 'b1'`, []L{{"a": "a1", "b": "b1"}}, nil},
	{`a == 'a1' && b != 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`a != 'a1' && b == 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`a != 'a1' && b != 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`a != 'a1' && !b == 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`!a == 'a1' && b == 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`has(a) && !has(b)`, []L{{"a": "a"}}, nil},
	{`!has(b) && has(a)`, []L{{"a": "a"}}, nil},
	{`!(!has(a) || has(b))`, []L{{"a": "a"}}, nil},
	{`!(has(b) || !has(a))`, []L{{"a": "a"}}, nil},
	{`a == 'a1' || b == 'b1'`, []L{{"a": "a1", "b": "b1"}}, nil},
	{`a == 'a1' || b != 'b1'`, []L{{"a": "a1", "b": "b1"}}, nil},
	{`a != 'a1' || b == 'b1'`, []L{{"a": "a1", "b": "b1"}}, nil},
	{`a != 'a1' || b != 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},
	{`! a == 'a1' || ! b == 'b1'`, nil, []L{{"a": "a1", "b": "b1"}}},

	// Absent-label semantics: only != and not in match a missing label.
	{`k == ""`, []L{{"k": ""}}, []L{{}, nil}},
	{`k != ""`, []L{{}, nil, {"k": "x"}}, []L{{"k": ""}}},
	{`k != "v"`, []L{{}, nil, {"k": "w"}}, []L{{"k": "v"}}},
	{`k not in {"v"}`, []L{{}, nil, {"k": "w"}}, []L{{"k": "v"}}},
	{`k not in {}`, []L{{}, nil, {"k": ""}, {"k": "v"}}, nil},
	{`k in {}`, nil, []L{{}, nil, {"k": ""}, {"k": "v"}}},
	{`k in {""}`, []L{{"k": ""}}, []L{{}, {"k": "v"}}},
	{`k contains ""`, []L{{"k": ""}, {"k": "v"}}, []L{{}, nil}},
	{`k starts with ""`, []L{{"k": ""}, {"k": "v"}}, []L{{}, nil}},
	{`k ends with ""`, []L{{"k": ""}, {"k": "v"}}, []L{{}, nil}},
	{`has(k)`, []L{{"k": ""}}, []L{{}, nil}},
	{`!(k == "v")`, []L{{}, {"k": "w"}}, []L{{"k": "v"}}},
	{`!k contains "v"`, []L{{}, {"k": "w"}}, []L{{"k": "vv"}}},

	// Precedence: && binds tighter than ||; ! binds to the next term only.
	{`a == "1" || b == "1" && c == "1"`, []L{{"a": "1"}, {"b": "1", "c": "1"}}, []L{{"b": "1"}, {"c": "1"}}},
	{`a == "1" && b == "1" || c == "1"`, []L{{"c": "1"}, {"a": "1", "b": "1"}}, []L{{"a": "1"}, {"b": "1"}}},
	{`(a == "1" || b == "1") && c == "1"`, []L{{"a": "1", "c": "1"}, {"b": "1", "c": "1"}}, []L{{"a": "1"}, {"c": "1"}}},
	{`!has(a) || has(b)`, []L{{}, {"a": "", "b": ""}}, []L{{"a": ""}}},
	{`!(has(a) || has(b))`, []L{{}}, []L{{"a": ""}, {"b": ""}}},
	{`!(!has(a))`, []L{{"a": ""}}, []L{{}}},

	// A set larger than the linear-search threshold.
	{`k in {"a","b","c","d","e","f","g","h","i","j","k"}`, []L{{"k": "a"}, {"k": "f"}, {"k": "k"}}, []L{{"k": "z"}, {}}},
	{`k not in {"a","b","c","d","e","f","g","h","i","j","k"}`, []L{{"k": "z"}, {}}, []L{{"k": "a"}, {"k": "k"}}},

	// Realistic keys and quoting.
	{`calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"`,
		[]L{{"calico/k8s_ns": "kube-system", "k8s-app": "kube-dns"}}, []L{{"calico/k8s_ns": "kube-system"}}},
	{`projectcalico.org/namespace in {'a b', "it's"}`, []L{{"projectcalico.org/namespace": "it's"}, {"projectcalico.org/namespace": "a b"}}, []L{{"projectcalico.org/namespace": "a"}}},
	{"k == \"line\nbreak\"", []L{{"k": "line\nbreak"}}, []L{{"k": "line"}}},
}

func TestEvaluate(t *testing.T) {
	for _, tc := range evalTests {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.sel, err)
			continue
		}
		if err := Validate(tc.sel); err != nil {
			t.Errorf("Validate(%q): %v", tc.sel, err)
		}
		// The canonical form must evaluate the same way.
		canon, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(String()=%q) of %q: %v", sel.String(), tc.sel, err)
			continue
		}
		for _, s := range []Selector{sel, canon} {
			for _, l := range tc.match {
				if !s.Evaluate(l) {
					t.Errorf("%q (as %q) should match %v", tc.sel, s.String(), l)
				}
			}
			for _, l := range tc.not {
				if s.Evaluate(l) {
					t.Errorf("%q (as %q) should not match %v", tc.sel, s.String(), l)
				}
			}
		}
	}
}

// canonTests: input, canonical String(), and upstream's UniqueID where
// upstream's tests pin one. The first block is ported from upstream.
var canonTests = []struct {
	in, want, uid string
}{
	{"", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{" all() ", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{" (all() )", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
	{`! (has( b)||! has(a ))`, "!(has(b) || !has(a))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"},
	{`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`, "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"},
	{`a == "'"`, `a == "'"`, ""},
	{`a == '"'`, `a == '"'`, ""},
	{`a contains '"'`, `a contains '"'`, ""},
	{`a contains "'"`, `a contains "'"`, ""},
	{`a startswith '"'`, `a starts with '"'`, ""},
	{`a endswith "'"`, `a ends with "'"`, ""},
	{`a!='"'`, `a != '"'`, ""},
	{`a in {"d"}`, `a in {"d"}`, ""},
	{`a in {"a", "b"}`, `a in {"a", "b"}`, ""},
	{`a in {"d", "a", "b"}`, `a in {"a", "b", "d"}`, ""},
	{`a in {"z", "x", "y", "a"}`, `a in {"a", "x", "y", "z"}`, ""},
	{`a in {"z", "z", "x", "y", "x", "a"}`, `a in {"a", "x", "y", "z"}`, ""},
	// Upstream's visitor tests pin these shapes too.
	{"k == 'v' && x == 'y'", `(k == "v" && x == "y")`, ""},
	{"k == 'v' || has(x)", `(k == "v" || has(x))`, ""},
	{"!(k == 'v')", `!k == "v"`, ""},
	{"!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
		`!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})`, ""},

	// Every term.
	{"global()", "global()", ""},
	{"global( )", "global()", ""},
	{"all(\t)", "all()", ""},
	{"has(a/b.c-d_E9)", "has(a/b.c-d_E9)", ""},
	{"k==''", `k == ""`, ""},
	{"k!=\"v\"", `k != "v"`, ""},
	{"k contains'v'", `k contains "v"`, ""},
	{"k starts  with\t'v'", `k starts with "v"`, ""},
	{"k ends with 'v'", `k ends with "v"`, ""},
	{"k in{}", "k in {}", ""},
	{"k not in {}", "k not in {}", ""},
	{"k notin{'a'}", `k not in {"a"}`, ""},
	{"k not \t in {'a',}", `k not in {"a"}`, ""},
	{"k in {'b','a',}", `k in {"a", "b"}`, ""},
	{`k in {"'", '"'}`, `k in {'"', "'"}`, ""}, // byte order: '"' < '\''

	// Structure: ! collapses by parity, parentheses vanish, nested
	// groups of the same operator are kept (upstream does not flatten).
	{"!!has(a)", "has(a)", ""},
	{"!!!has(a)", "!has(a)", ""},
	{"!(!has(a))", "has(a)", ""},
	{"!(!(!has(a)))", "!has(a)", ""},
	{"((has(a)))", "has(a)", ""},
	{"!all()", "!all()", ""},
	{"has(a) && has(b) && has(c)", "(has(a) && has(b) && has(c))", ""},
	{"has(a) && (has(b) && has(c))", "(has(a) && (has(b) && has(c)))", ""},
	{"has(a) || has(b) && has(c)", "(has(a) || (has(b) && has(c)))", ""},
	{"(has(a) || has(b)) && has(c)", "((has(a) || has(b)) && has(c))", ""},
	{"!(has(a) && has(b))", "!(has(a) && has(b))", ""},

	// Keywords are ordinary label names where a label is expected.
	{`contains contains "contains"`, `contains contains "contains"`, ""},
	{`startswith starts with "x"`, `startswith starts with "x"`, ""},
	{`in in {"in"}`, `in in {"in"}`, ""},
	{`not not in {}`, `not not in {}`, ""},
	{`has == "x" && all != "y"`, `(has == "x" && all != "y")`, ""},
	{`has(has) || has(all)`, `(has(has) || has(all))`, ""},

	// Labels: upstream's tokenizer takes [A-Za-z0-9_./-]+ with no further
	// structure.
	{`9 == "x"`, `9 == "x"`, ""},
	{`-._/ == "x"`, `-._/ == "x"`, ""},
	{`a/b/c == "x"`, `a/b/c == "x"`, ""},
	{`calico/k8s_NS-.1/role == "x"`, `calico/k8s_NS-.1/role == "x"`, ""},

	// Strings are raw bytes up to the closing quote.
	{`k == "a && b || (c)"`, `k == "a && b || (c)"`, ""},
	{"k == '\t\n\x00\xff é'", "k == \"\t\n\x00\xff é\"", ""},
	{`k == "   "`, `k == "   "`, ""},
}

func TestCanonical(t *testing.T) {
	for _, tc := range canonTests {
		sel, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		if tc.uid != "" && sel.UniqueID() != tc.uid {
			t.Errorf("Parse(%q).UniqueID() = %q, want %q", tc.in, sel.UniqueID(), tc.uid)
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("re-parse of %q: %v", sel.String(), err)
			continue
		}
		if again.String() != sel.String() || again.UniqueID() != sel.UniqueID() {
			t.Errorf("round trip of %q: %q/%q then %q/%q", tc.in,
				sel.String(), sel.UniqueID(), again.String(), again.UniqueID())
		}
	}
}

func TestUniqueIDShape(t *testing.T) {
	a, b := MustParse("has(a)"), MustParse(" has( a ) ")
	if a.UniqueID() != b.UniqueID() {
		t.Errorf("equal selectors, different IDs: %q %q", a.UniqueID(), b.UniqueID())
	}
	if c := MustParse("has(b)"); c.UniqueID() == a.UniqueID() {
		t.Errorf("different selectors, same ID %q", a.UniqueID())
	}
	if id := a.UniqueID(); len(id) != 40 || !strings.HasPrefix(id, "s:") {
		t.Errorf("UniqueID %q: want s: and 38 base64url characters", id)
	}
}

// errorTests: input, offset of the error, and a fragment of the message.
// The inputs without an offset are upstream's badSelectors.
var errorTests = []struct {
	in   string
	off  int
	frag string
}{
	{"b == b", 5, `expected a quoted string, found label "b"`},
	{"b contains b", 11, "expected a quoted string"},
	{"b starts with b", -1, "expected"},
	{"b ends with b", -1, "expected"},
	{"'b1' == b", 0, `expected a label, has(), all(), global(), "!" or "(", found string "b1"`},
	{"b", 1, `expected an operator after label "b"`},
	{"a b", 2, `expected an operator (==, !=, in, not in, contains, starts with, ends with) after a label, found "b"`},
	{"!", 1, "expected a label"},
	{`foo == "bar" &`, 13, `expected "&&"`},
	{`foo == "bar" |`, 13, `expected "||"`},
	{`foo != ||`, 7, `expected a quoted string, found "||"`},
	{`foo in {"", ||`, 12, `expected a quoted string or "}", found "||"`},
	{`foo in ""`, 7, `expected "{" to start a set, found string ""`},
	{`"FOO`, 0, "unterminated string"},
	{`"FOO'`, 0, "unterminated string"},
	{`'FOO`, 0, "unterminated string"},
	{`(`, 1, "expected a label"},
	{`(a == "foo"`, 11, `expected "&&", "||" or ")"`},
	{`)`, 0, `found ")"`},
	{`()`, 1, `found ")"`},
	{`%`, 0, `found '%'`},
	{`a == "b" && %`, 12, `found '%'`},
	{`a == "b" || %`, 12, `found '%'`},
	{`a `, 2, `expected an operator after label "a"`},
	{`has(foo) &&`, 11, "expected a label"},

	// More.
	{`a == `, 5, "expected a quoted string"},
	{`a = "b"`, 2, `expected "=="`},
	{`a == "b" c == "d"`, 9, `expected "&&", "||" or the end of the selector, found label "c"`},
	{`a == "b")`, 8, `found ")"`},
	{`a == "b" é`, 9, `found 'é'`},
	{"a == \"b\" \xff", 9, "found byte 0xff"},
	{`a in {"x" "y"}`, 10, `expected "," or "}"`},
	{`a in {,}`, 6, `expected a quoted string or "}", found ","`},
	{`a in {"x",,}`, 10, `expected a quoted string or "}"`},
	{`a in {"x"`, 9, `expected "," or "}"`},
	{`a in`, 4, `expected "{" to start a set`},
	{`a not "x"`, 2, "expected an operator"},
	{`a starts "x"`, 2, "expected an operator"},
	{`a startswithx "x"`, 2, "expected an operator"},
	{`a containsx "x"`, 2, "expected an operator"},
	{`a inx {}`, 2, "expected an operator"},
	{`a notinx {}`, 2, "expected an operator"},
	{`a "x"`, 2, `expected an operator after label "a", found string "x"`},
	{`a ( "x"`, 2, `expected an operator after label "a", found "("`},
	{`a ! "x"`, 2, `expected an operator after label "a", found "!"`},
	{`has()`, 4, `expected a label name after "has(", found ')'`},
	{`has(`, 4, `expected a label name after "has(", found end of selector`},
	{`has(a b)`, 6, `expected ")" to close "has(", found "b"`},
	{`has (a)`, 4, `expected an operator after label "has", found "("`},
	{`all(x)`, 4, `expected ")" to close "all("`},
	{`global(`, 7, `expected ")" to close "global("`},
	{`all ()`, 4, "expected an operator"},
	{`x has(a)`, 2, "expected an operator"},
	{`has(a) has(b)`, 7, `expected "&&", "||" or the end of the selector, found has(b)`},
	{`has(a) &&& has(b)`, 9, `expected "&&"`},
	{`has(a) && || has(b)`, 10, `found "||"`},
	{`|| has(b)`, 0, `found "||"`},
	{`a !== "b"`, 4, `expected "=="`},
	{`{}`, 0, `found "{"`},
	{"\n", 0, `found '\n'`}, // only spaces and tabs are whitespace
	{"has(a)\n", 6, `found '\n'`},
	{"has(a)\r", 6, `found '\r'`},
	{"\u00a0has(a)", 0, `found '\u00a0'`},
	{"has(" + strings.Repeat("a", 513) + ")", 4, "label is 513 bytes long, the limit is 512"},
	{strings.Repeat("a", 513) + ` == "x"`, 0, "label is 513 bytes long"},
	{strings.Repeat("(", MaxNesting+1) + "all()" + strings.Repeat(")", MaxNesting+1), MaxNesting, "nested deeper than 1000"},
	{strings.Repeat("!(", MaxNesting+1) + "all()" + strings.Repeat(")", MaxNesting+1), 2*MaxNesting + 1, "nested deeper"},
}

func TestErrors(t *testing.T) {
	for _, tc := range errorTests {
		_, perr := Parse(tc.in)
		verr := Validate(tc.in)
		if perr == nil || verr == nil {
			t.Errorf("%q: Parse err %v, Validate err %v; want both to fail", tc.in, perr, verr)
			continue
		}
		if perr.Error() != verr.Error() {
			t.Errorf("%q: Parse says %q, Validate says %q", tc.in, perr, verr)
		}
		var se *SyntaxError
		if !errors.As(perr, &se) {
			t.Errorf("%q: error %T is not a *SyntaxError", tc.in, perr)
			continue
		}
		if se.Selector != tc.in {
			t.Errorf("%q: SyntaxError.Selector = %q", tc.in, se.Selector)
		}
		if tc.off >= 0 && se.Offset != tc.off {
			t.Errorf("%q: offset %d, want %d (%v)", tc.in, se.Offset, tc.off, perr)
		}
		if !strings.Contains(perr.Error(), tc.frag) {
			t.Errorf("%q: error %q does not contain %q", tc.in, perr, tc.frag)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	err := Validate("a == ")
	want := `selector "a == ": expected a quoted string at offset 5`
	if err == nil || err.Error() != want {
		t.Errorf("Validate(%q) = %v, want %s", "a == ", err, want)
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("k", MaxLabelLength)
	for _, s := range []string{
		"has(" + long + ")",
		long + ` == "x"`,
		strings.Repeat("(", MaxNesting) + "all()" + strings.Repeat(")", MaxNesting),
		strings.Repeat("!", 100000) + "all()",
		"k in {" + strings.Repeat(`"x",`, 100000) + "}",
		strings.TrimSuffix(strings.Repeat("has(a) && ", 100000), " && "),
	} {
		if err := Validate(s); err != nil {
			t.Errorf("Validate(%.40q...): %v", s, err)
		}
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse(" has(a) ").String(); got != "has(a)" {
		t.Errorf("MustParse: %q", got)
	}
	defer func() {
		r := recover()
		if _, ok := r.(*SyntaxError); !ok {
			t.Errorf("MustParse(bad) panicked with %v (%T), want a *SyntaxError", r, r)
		}
	}()
	MustParse("a ==")
}

// TestConcurrentUse checks (under -race) that the lazily cached String and
// UniqueID are safe to compute from several goroutines at once.
func TestConcurrentUse(t *testing.T) {
	sel := MustParse(`a in {"x", "y"} && !has(b) || c starts with "z"`)
	const want = `((a in {"x", "y"} && !has(b)) || c starts with "z")`
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := sel.String(); got != want {
				t.Errorf("String() = %q", got)
			}
			_ = sel.UniqueID()
			_ = sel.Evaluate(L{"a": "x"})
		}()
	}
	wg.Wait()
}

func TestErrorTruncatesLongInput(t *testing.T) {
	in := strings.Repeat("a", 300) + " =="
	msg := Validate(in).Error()
	if !strings.HasPrefix(msg, `selector "`+strings.Repeat("a", 256)+`"...: `) || !strings.HasSuffix(msg, "at offset 303") {
		t.Errorf("message %q", msg)
	}
}

func TestRewrite(t *testing.T) {
	hasNS := MustParse("has(projectcalico.org/namespace)")
	notNS := MustParse("!has(projectcalico.org/namespace)")
	for _, c := range []struct{ in, want string }{
		{`a == "b"`, `pcns.a == "b"`},
		{`has(a) && b in {"x"} || !c != "d"`, `((has(pcns.a) && pcns.b in {"x"}) || !pcns.c != "d")`},
		{`all()`, `has(projectcalico.org/namespace)`},
		{`!global()`, `has(projectcalico.org/namespace)`},
		{`global() || x starts with "all()"`, `(!has(projectcalico.org/namespace) || pcns.x starts with "all()")`},
	} {
		got := Rewrite(MustParse(c.in), "pcns.", hasNS, notNS)
		if got.String() != c.want {
			t.Errorf("Rewrite(%q) = %q, want %q", c.in, got.String(), c.want)
		}
		if re := MustParse(got.String()); re.String() != got.String() {
			t.Errorf("Rewrite(%q) is not canonical: %q reparses as %q", c.in, got.String(), re.String())
		}
	}
	if s := Rewrite(MustParse("all()"), "p.", nil, nil).String(); s != "all()" {
		t.Errorf("all() without a replacement = %q", s)
	}
}
