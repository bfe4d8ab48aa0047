package selector

// Rewrite returns a copy of s in which every label key has prefix put in
// front of it (`k == "v"` becomes `pcns.k == "v"`, as upstream's
// PrefixVisitor does for namespace and service-account selectors) and, when
// they are not nil, every all() term is replaced by allTo and every
// global() term by globalTo. s itself is not changed.
func Rewrite(s Selector, prefix string, allTo, globalTo Selector) Selector {
	var a, g node
	if allTo != nil {
		a = allTo.(*selector).root
	}
	if globalTo != nil {
		g = globalTo.(*selector).root
	}
	return &selector{root: rewrite(s.(*selector).root, prefix, a, g)}
}

func rewrite(n node, prefix string, allTo, globalTo node) node {
	switch n := n.(type) {
	case allNode:
		if allTo != nil {
			return allTo
		}
		return n
	case globalNode:
		if globalTo != nil {
			return globalTo
		}
		return n
	case *hasNode:
		return &hasNode{key: prefix + n.key}
	case *cmpNode:
		return &cmpNode{op: n.op, key: prefix + n.key, val: n.val}
	case *setNode:
		return &setNode{not: n.not, key: prefix + n.key, vals: n.vals}
	case *notNode:
		x := rewrite(n.x, prefix, allTo, globalTo)
		if inner, ok := x.(*notNode); ok {
			return inner.x // keep the canonical form: no "!!"
		}
		return &notNode{x: x}
	case *andNode:
		return &andNode{xs: rewriteAll(n.xs, prefix, allTo, globalTo)}
	case *orNode:
		return &orNode{xs: rewriteAll(n.xs, prefix, allTo, globalTo)}
	}
	return n
}

func rewriteAll(xs []node, prefix string, allTo, globalTo node) []node {
	out := make([]node, len(xs))
	for i, x := range xs {
		out[i] = rewrite(x, prefix, allTo, globalTo)
	}
	return out
}
