package selector

import (
	"fmt"
	"slices"
)

// parser is a recursive-descent parser over the lexer with one token of
// lookahead. Precedence, loosest first: ||, &&, prefix !.
type parser struct {
	lx    lexer
	tok   token // current lookahead token
	depth int   // current parenthesis nesting
}

// parse turns a selector into its AST. The error, if any, is a *SyntaxError.
func parse(s string) (node, error) {
	p := parser{lx: lexer{src: s}}
	n, err := p.parseSelector()
	if err != nil {
		return nil, err // never a typed nil: err is checked above
	}
	return n, nil
}

func (p *parser) parseSelector() (node, *SyntaxError) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return allNode{}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.expected(`"&&", "||" or the end of the selector`)
	}
	return n, nil
}

// advance moves the lookahead to the next token.
func (p *parser) advance() *SyntaxError {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// expected builds the error for an unexpected lookahead token.
func (p *parser) expected(what string) *SyntaxError {
	msg := "expected " + what
	if p.tok.kind != tokEOF {
		msg += ", found " + p.tok.describe()
	}
	return &SyntaxError{Selector: p.lx.src, Offset: p.tok.pos, Msg: msg}
}

// parseOr parses and-expressions separated by "||".
func (p *parser) parseOr() (node, *SyntaxError) {
	first, err := p.parseAnd()
	if err != nil || p.tok.kind != tokOr {
		return first, err
	}
	var buf [8]node // most groups are small: grow on the stack, copy once
	ops := append(buf[:0], first)
	for p.tok.kind == tokOr {
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	return &orNode{slices.Clone(ops)}, nil
}

// parseAnd parses unary expressions separated by "&&".
func (p *parser) parseAnd() (node, *SyntaxError) {
	first, err := p.parseUnary()
	if err != nil || p.tok.kind != tokAnd {
		return first, err
	}
	var buf [8]node // most groups are small: grow on the stack, copy once
	ops := append(buf[:0], first)
	for p.tok.kind == tokAnd {
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	return &andNode{slices.Clone(ops)}, nil
}

// parseUnary parses a term preceded by any number of "!". Like upstream, a
// run of "!" collapses by parity. Unlike upstream, a "!" applied to a
// parenthesised negation also cancels (`!(!x)` is `x`): upstream renders
// that as `!!x`, which re-parses as `x`, so its canonical form is not a
// fixed point there.
func (p *parser) parseUnary() (node, *SyntaxError) {
	negate := false
	for p.tok.kind == tokNot {
		negate = !negate
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	n, err := p.parseTerm()
	if err != nil || !negate {
		return n, err
	}
	if inner, ok := n.(*notNode); ok {
		return inner.x, nil
	}
	return &notNode{n}, nil
}

// parseTerm parses one term: all(), global(), has(k), a label comparison,
// or a parenthesised expression.
func (p *parser) parseTerm() (node, *SyntaxError) {
	t := p.tok
	switch t.kind {
	case tokAll, tokGlobal, tokHas:
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch t.kind {
		case tokAll:
			return allNode{}, nil
		case tokGlobal:
			return globalNode{}, nil
		}
		return &hasNode{t.val}, nil
	case tokLParen:
		if p.depth == MaxNesting {
			return nil, &SyntaxError{Selector: p.lx.src, Offset: t.pos,
				Msg: fmt.Sprintf("parentheses nested deeper than %d", MaxNesting)}
		}
		p.depth++
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.expected(`"&&", "||" or ")"`)
		}
		p.depth--
		return n, p.advance()
	case tokLabel:
		if err := p.advance(); err != nil {
			return nil, err
		}
		return p.parseComparison(t.val)
	}
	return nil, p.expected(`a label, has(), all(), global(), "!" or "("`)
}

// parseComparison parses the operator and operand after label key.
func (p *parser) parseComparison(key string) (node, *SyntaxError) {
	var op cmpOp
	switch p.tok.kind {
	case tokEq:
		op = opEq
	case tokNe:
		op = opNe
	case tokContains:
		op = opContains
	case tokStartsWith:
		op = opStartsWith
	case tokEndsWith:
		op = opEndsWith
	case tokIn, tokNotIn:
		return p.parseSet(key, p.tok.kind == tokNotIn)
	default:
		return nil, p.expected(fmt.Sprintf("an operator after label %q", key))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokString {
		return nil, p.expected("a quoted string")
	}
	n := &cmpNode{op: op, key: key, val: p.tok.val}
	return n, p.advance()
}

// parseSet parses `{ "a", "b" }` after in / not in. The set may be empty
// and may have a trailing comma, as upstream allows.
func (p *parser) parseSet(key string, not bool) (node, *SyntaxError) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokLBrace {
		return nil, p.expected(`"{" to start a set`)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var buf [8]string
	vals := buf[:0]
	for p.tok.kind == tokString {
		vals = append(vals, p.tok.val)
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokComma {
			if p.tok.kind != tokRBrace {
				return nil, p.expected(`"," or "}"`)
			}
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tokRBrace {
		return nil, p.expected(`a quoted string or "}"`)
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	set := &setNode{not: not, key: key}
	if len(vals) > 0 {
		set.vals = make([]string, len(vals))
		copy(set.vals, vals)
	}
	return set, p.advance()
}
