package selector

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that Validate agrees with it,
// that errors point inside the input, that the canonical form is a fixed
// point (Parse(String()).String() == String(), same UniqueID), and that the
// canonical form evaluates like the original on label sets built from the
// selector's own keys and values.
func FuzzParse(f *testing.F) {
	for _, tc := range evalTests {
		f.Add(tc.sel)
	}
	for _, tc := range canonTests {
		f.Add(tc.in)
	}
	for _, tc := range errorTests {
		if len(tc.in) < 256 {
			f.Add(tc.in)
		}
	}
	for _, tc := range tokenTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		verr := Validate(s)
		if (err == nil) != (verr == nil) {
			t.Fatalf("Parse err %v, Validate err %v", err, verr)
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SyntaxError: %v", err, err)
			}
			if se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("offset %d outside input of length %d: %v", se.Offset, len(s), err)
			}
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form of %q is not stable: %q then %q", s, canon, again.String())
		}
		if again.UniqueID() != sel.UniqueID() {
			t.Fatalf("UniqueID changed on round trip of %q", s)
		}
		for _, l := range labelSetsFor(sel.(*selector).root) {
			if sel.Evaluate(l) != again.Evaluate(l) {
				t.Fatalf("%q and its canonical form %q disagree on %v", s, canon, l)
			}
		}
	})
}

// labelSetsFor builds label sets that exercise n: empty, nil, and for each
// value v mentioned anywhere, every mentioned key set to v (plus a few
// variants of v so that contains/starts/ends see partial matches).
func labelSetsFor(n node) []Labels {
	var keys, vals []string
	var walk func(node)
	walk = func(n node) {
		switch n := n.(type) {
		case *hasNode:
			keys = append(keys, n.key)
		case *cmpNode:
			keys = append(keys, n.key)
			vals = append(vals, n.val, "x"+n.val, n.val+"x")
		case *setNode:
			keys = append(keys, n.key)
			vals = append(vals, n.vals...)
		case *notNode:
			walk(n.x)
		case *andNode:
			for _, x := range n.xs {
				walk(x)
			}
		case *orNode:
			for _, x := range n.xs {
				walk(x)
			}
		}
	}
	walk(n)
	vals = append(vals, "")
	if len(vals) > 16 {
		vals = vals[:16]
	}
	sets := []Labels{nil, {}}
	for _, v := range vals {
		l := Labels{}
		for i, k := range keys {
			if i%2 == 0 || len(keys) == 1 {
				l[k] = v
			}
		}
		sets = append(sets, l)
		full := Labels{}
		for _, k := range keys {
			full[k] = v
		}
		sets = append(sets, full)
	}
	return sets
}
