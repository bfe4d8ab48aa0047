package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/selector"
)

// familyName is "IPv4" or "IPv6".
func familyName(fam int) string {
	if fam == 6 {
		return "IPv6"
	}
	return "IPv4"
}

// selectsNode reports whether the pool's nodeSelector matches the node's
// labels (an empty selector matches).
func selectsNode(p pool, labels map[string]string) (bool, error) {
	if strings.TrimSpace(p.Spec.NodeSelector) == "" {
		return true, nil
	}
	sel, err := selector.Parse(p.Spec.NodeSelector)
	if err != nil {
		return false, fmt.Errorf("pool %s has an invalid nodeSelector %q: %w", p, p.Spec.NodeSelector, err)
	}
	return sel.Evaluate(labels), nil
}

// selectsNamespace evaluates the pool's namespaceSelector. In etcd mode
// there are no namespace labels, so it is evaluated against none, as
// upstream does when it has no namespace.
func selectsNamespace(p pool) bool {
	if strings.TrimSpace(p.Spec.NamespaceSelector) == "" {
		return true
	}
	sel, err := selector.Parse(p.Spec.NamespaceSelector)
	return err == nil && sel.Evaluate(map[string]string{})
}

// matchesRequest reports whether pool p is the one a request names, by
// name or by CIDR.
func matchesRequest(p pool, req string) bool {
	if p.Name == req {
		return true
	}
	if c, err := api.ParseCIDR(req); err == nil {
		return c == p.cidr
	}
	return false
}

// selectPools chooses the pools an allocation of family fam for use may
// draw from, in name order, following upstream's determinePools: requested
// pools (by name or CIDR) must exist and be enabled and are used whatever
// their selectors and assignment mode; otherwise the enabled Automatic
// pools whose nodeSelector matches the node. Both are then filtered by
// allowedUses. The error wraps ErrNoPool and says why each pool was left out.
func selectPools(all []pool, fam int, requested []string, nodeName string, labels map[string]string, use api.IPPoolAllowedUse) ([]pool, error) {
	var chosen []pool
	if len(requested) > 0 {
		for _, req := range requested {
			var found *pool
			for i := range all {
				if matchesRequest(all[i], req) {
					found = &all[i]
					break
				}
			}
			switch {
			case found == nil:
				return nil, fmt.Errorf("%w: the requested pool (%s) does not exist (give an IPPool name or its exact CIDR)", ErrNoPool, req)
			case !found.enabled():
				return nil, fmt.Errorf("%w: the requested pool %s is disabled", ErrNoPool, *found)
			case found.family() != fam:
				return nil, fmt.Errorf("%w: the requested pool %s is not an %s pool", ErrNoPool, *found, familyName(fam))
			}
			if !containsPool(chosen, found.Name) {
				chosen = append(chosen, *found)
			}
		}
	} else {
		var why []string
		for _, p := range all {
			if p.family() != fam {
				continue
			}
			switch {
			case !p.enabled():
				why = append(why, fmt.Sprintf("%s is disabled", p))
				continue
			case p.IsManual():
				why = append(why, fmt.Sprintf("%s has assignmentMode Manual (name it in the request to use it)", p))
				continue
			}
			ok, err := selectsNode(p, labels)
			if err != nil {
				why = append(why, err.Error())
				continue
			}
			if !ok {
				why = append(why, fmt.Sprintf("%s has nodeSelector %q, which does not match node %s's labels %v", p, p.Spec.NodeSelector, nodeName, labels))
				continue
			}
			if !selectsNamespace(p) {
				why = append(why, fmt.Sprintf("%s has namespaceSelector %q, which needs namespace labels (none in etcd mode)", p, p.Spec.NamespaceSelector))
				continue
			}
			chosen = append(chosen, p)
		}
		if len(chosen) == 0 {
			if len(why) == 0 {
				return nil, fmt.Errorf("%w: there is no %s IP pool; create one (calicoctl create -f pool.yaml)", ErrNoPool, familyName(fam))
			}
			return nil, fmt.Errorf("%w: no enabled %s pool selects node %s: %s", ErrNoPool, familyName(fam), nodeName, strings.Join(why, "; "))
		}
	}
	var byUse []pool
	for _, p := range chosen {
		if p.Allows(use) {
			byUse = append(byUse, p)
		}
	}
	if len(byUse) == 0 {
		names := make([]string, len(chosen))
		for i, p := range chosen {
			names[i] = fmt.Sprintf("%s allows %v", p, p.Spec.AllowedUses)
		}
		return nil, fmt.Errorf("%w: no %s pool for node %s allows use %s (%s)", ErrNoPool, familyName(fam), nodeName, use, strings.Join(names, "; "))
	}
	return byUse, nil
}

func containsPool(ps []pool, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// inPools reports whether block cidr lies in one of the pools.
func inPools(pools []pool, cidr netip.Prefix) bool {
	_, ok := poolFor(pools, cidr.Addr())
	return ok
}

// enabledOfFamily returns the enabled pools of a family.
func enabledOfFamily(all []pool, fam int) []pool {
	var out []pool
	for _, p := range all {
		if p.enabled() && p.family() == fam {
			out = append(out, p)
		}
	}
	return out
}
