package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902) over generic JSON
// trees (as decodeJSON returns them). Both leave their inputs unchanged.

// mergePatch applies an RFC 7386 merge patch: objects merge key by key, null
// deletes a key, anything else (lists included) replaces.
func mergePatch(doc, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	out := map[string]any{}
	if dm, ok := doc.(map[string]any); ok {
		for k, v := range dm {
			out[k] = v
		}
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// jsonPatch applies an RFC 6902 patch: a list of add, remove, replace, move,
// copy and test operations, all or nothing.
func jsonPatch(doc any, patch any) (any, error) {
	ops, ok := patch.([]any)
	if !ok {
		return nil, errors.New("a JSON patch must be a list of operations, e.g. [{\"op\":\"replace\",\"path\":\"/spec/natOutgoing\",\"value\":true}]")
	}
	doc = deepCopy(doc)
	for i, o := range ops {
		op, ok := o.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("operation %d: not an object", i+1)
		}
		name, _ := op["op"].(string)
		path, ok := op["path"].(string)
		if !ok {
			return nil, fmt.Errorf("operation %d (%s): a path is required", i+1, name)
		}
		fail := func(err error) error { return fmt.Errorf("operation %d (%s %s): %v", i+1, name, path, err) }
		toks, err := pointer(path)
		if err != nil {
			return nil, fail(err)
		}
		value, hasValue := op["value"]
		switch name {
		case "add", "replace", "test":
			if !hasValue {
				return nil, fail(errors.New("a value is required"))
			}
		case "move", "copy":
			from, ok := op["from"].(string)
			if !ok {
				return nil, fail(errors.New("a from path is required"))
			}
			ftoks, err := pointer(from)
			if err != nil {
				return nil, fail(err)
			}
			if value, err = ptrGet(doc, ftoks); err != nil {
				return nil, fail(fmt.Errorf("from %s: %v", from, err))
			}
			if name == "move" {
				if strings.HasPrefix(path+"/", from+"/") && path != from {
					return nil, fail(errors.New("cannot move a value into itself"))
				}
				if doc, err = ptrRemove(doc, ftoks); err != nil {
					return nil, fail(err)
				}
			}
			value = deepCopy(value)
		case "remove":
		default:
			return nil, fail(fmt.Errorf("unknown operation %q: use add, remove, replace, move, copy or test", name))
		}
		switch name {
		case "add", "move", "copy":
			doc, err = ptrSet(doc, toks, value, false)
		case "replace":
			doc, err = ptrSet(doc, toks, value, true)
		case "remove":
			doc, err = ptrRemove(doc, toks)
		case "test":
			var cur any
			if cur, err = ptrGet(doc, toks); err == nil && !jsonEqual(cur, value) {
				err = errors.New("test failed: the value differs")
			}
		}
		if err != nil {
			return nil, fail(err)
		}
	}
	return doc, nil
}

// pointer splits an RFC 6901 JSON pointer into unescaped tokens.
func pointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q must start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

func index(tok string, n int, allowEnd bool) (int, error) {
	if allowEnd && tok == "-" {
		return n, nil
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || (tok != "0" && strings.HasPrefix(tok, "0")) {
		return 0, fmt.Errorf("%q is not a list index", tok)
	}
	max := n - 1
	if allowEnd {
		max = n
	}
	if i > max {
		return 0, fmt.Errorf("index %d is out of range (the list has %d items)", i, n)
	}
	return i, nil
}

func ptrGet(doc any, toks []string) (any, error) {
	cur := doc
	for _, t := range toks {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[t]
			if !ok {
				return nil, fmt.Errorf("%q does not exist", t)
			}
			cur = v
		case []any:
			i, err := index(t, len(c), false)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q: not inside an object or a list", t)
		}
	}
	return cur, nil
}

// ptrSet adds (inserting into lists) or, with replace, replaces the value at
// toks and returns the new document.
func ptrSet(doc any, toks []string, v any, replace bool) (any, error) {
	if len(toks) == 0 {
		return v, nil
	}
	t := toks[0]
	switch c := doc.(type) {
	case map[string]any:
		if len(toks) > 1 {
			child, ok := c[t]
			if !ok {
				return nil, fmt.Errorf("%q does not exist", t)
			}
			n, err := ptrSet(child, toks[1:], v, replace)
			if err != nil {
				return nil, err
			}
			c[t] = n
			return c, nil
		}
		if _, ok := c[t]; replace && !ok {
			return nil, fmt.Errorf("%q does not exist", t)
		}
		c[t] = v
		return c, nil
	case []any:
		if len(toks) > 1 {
			i, err := index(t, len(c), false)
			if err != nil {
				return nil, err
			}
			if c[i], err = ptrSet(c[i], toks[1:], v, replace); err != nil {
				return nil, err
			}
			return c, nil
		}
		i, err := index(t, len(c), !replace)
		if err != nil {
			return nil, err
		}
		if replace {
			c[i] = v
			return c, nil
		}
		out := make([]any, 0, len(c)+1)
		out = append(out, c[:i]...)
		out = append(out, v)
		return append(out, c[i:]...), nil
	}
	return nil, fmt.Errorf("%q: not inside an object or a list", t)
}

func ptrRemove(doc any, toks []string) (any, error) {
	if len(toks) == 0 {
		return nil, errors.New("cannot remove the whole document")
	}
	t := toks[0]
	switch c := doc.(type) {
	case map[string]any:
		child, ok := c[t]
		if !ok {
			return nil, fmt.Errorf("%q does not exist", t)
		}
		if len(toks) == 1 {
			delete(c, t)
			return c, nil
		}
		n, err := ptrRemove(child, toks[1:])
		if err != nil {
			return nil, err
		}
		c[t] = n
		return c, nil
	case []any:
		i, err := index(t, len(c), false)
		if err != nil {
			return nil, err
		}
		if len(toks) == 1 {
			return append(append([]any{}, c[:i]...), c[i+1:]...), nil
		}
		if c[i], err = ptrRemove(c[i], toks[1:]); err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("%q: not inside an object or a list", t)
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// jsonEqual compares JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	na, aok := a.(json.Number)
	nb, bok := b.(json.Number)
	if aok && bok {
		fa, err1 := na.Float64()
		fb, err2 := nb.Float64()
		return err1 == nil && err2 == nil && fa == fb
	}
	switch ta := a.(type) {
	case map[string]any:
		tb, ok := b.(map[string]any)
		if !ok || len(ta) != len(tb) {
			return false
		}
		for k, v := range ta {
			w, ok := tb[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		tb, ok := b.([]any)
		if !ok || len(ta) != len(tb) {
			return false
		}
		for i := range ta {
			if !jsonEqual(ta[i], tb[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
