package policy

import (
	"maps"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ruleset"
)

// entityKind says what an entity is.
type entityKind uint8

const (
	kindWEP entityKind = iota + 1
	kindHEP
	kindNetSet
	kindGlobalNetSet
)

// namedPort is one named port of an endpoint.
type namedPort struct {
	name  string
	proto uint8
	port  uint16
}

// entity is anything selectors match: a workload or host endpoint (of any
// node), a NetworkSet or a GlobalNetworkSet. Entities are immutable once
// built: an update replaces the pointer, so the old one still says what
// the sets held.
type entity struct {
	key     string // "wep/<ns>/<name>", "hep/<name>", "netset/<ns>/<name>", "gnetset/<name>"
	kind    entityKind
	node    string
	own     map[string]string // own labels, after upstream's adjustments
	parents []string          // profiles whose labelsToApply it inherits
	labels  map[string]string // own + inherited: what selectors see
	nets    []netip.Prefix    // addresses (endpoints) or networks (sets)
	ports   []namedPort
	// Local endpoints only.
	iface    string
	profiles []string
}

// endpoint reports whether the entity is a workload or host endpoint.
func (e *entity) endpoint() bool { return e.kind == kindWEP || e.kind == kindHEP }

// Keys of the entities and IDs of the endpoints.
func wepKey(ns, name string) string { return "wep/" + ns + "/" + name }
func hepKey(name string) string     { return "hep/" + name }
func netSetKey(ns, name string) string {
	return "netset/" + ns + "/" + name
}
func globalNetSetKey(name string) string { return "gnetset/" + name }

// wepEntity builds a workload endpoint's entity, or nil when upstream
// ignores it (no addresses).
func wepEntity(w *api.WorkloadEndpoint) *entity {
	ns := w.Namespace
	if ns == "" {
		ns = "default"
	}
	e := &entity{key: wepKey(ns, w.Name), kind: kindWEP, node: w.Spec.Node,
		iface: w.Spec.InterfaceName, profiles: w.Spec.Profiles, parents: w.Spec.Profiles}
	for _, s := range w.Spec.IPNetworks {
		if p, err := api.ParseAddrOrCIDR(s); err == nil {
			e.nets = append(e.nets, p.Masked())
		}
	}
	if len(e.nets) == 0 {
		return nil
	}
	e.own = make(map[string]string, len(w.Labels)+3)
	for k, v := range w.Labels {
		// An endpoint may not claim namespace or service-account labels.
		if !strings.HasPrefix(k, prefixNamespace) && !strings.HasPrefix(k, prefixSA) {
			e.own[k] = v
		}
	}
	e.own[api.LabelNamespace] = ns
	if _, ok := e.own[api.LabelOrchestrator]; !ok && w.Spec.Orchestrator != "" {
		e.own[api.LabelOrchestrator] = w.Spec.Orchestrator
	}
	if w.Spec.ServiceAccountName != "" {
		e.own[labelServiceAccount] = w.Spec.ServiceAccountName
	}
	for _, p := range w.Spec.Ports {
		if p.Name != "" {
			e.ports = append(e.ports, namedPort{name: p.Name, proto: p.Protocol.Number(), port: p.Port})
		}
	}
	return e
}

func hepEntity(h *api.HostEndpoint) *entity {
	e := &entity{key: hepKey(h.Name), kind: kindHEP, node: h.Spec.Node, own: maps.Clone(h.Labels),
		iface: h.Spec.InterfaceName, profiles: h.Spec.Profiles, parents: h.Spec.Profiles}
	for _, s := range h.Spec.ExpectedIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			e.nets = append(e.nets, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for _, p := range h.Spec.Ports {
		e.ports = append(e.ports, namedPort{name: p.Name, proto: p.Protocol.Number(), port: p.Port})
	}
	return e
}

func netSetEntity(n *api.NetworkSet) *entity {
	ns := n.Namespace
	if ns == "" {
		ns = "default"
	}
	own := maps.Clone(n.Labels)
	if own == nil {
		own = map[string]string{}
	}
	own[api.LabelNamespace] = ns
	return &entity{key: netSetKey(ns, n.Name), kind: kindNetSet, own: own,
		parents: []string{NamespaceProfilePrefix + ns}, nets: parseNets(n.Spec.Nets)}
}

func globalNetSetEntity(n *api.GlobalNetworkSet) *entity {
	return &entity{key: globalNetSetKey(n.Name), kind: kindGlobalNetSet, own: maps.Clone(n.Labels), nets: parseNets(n.Spec.Nets)}
}

// inherit computes labels: the entity's own, then each parent profile's
// labelsToApply in order (the first to set a key wins).
func (e *entity) inherit(profiles map[string]*profile) {
	var out map[string]string // a copy, made only when a parent adds labels
	for _, p := range e.parents {
		pr := profiles[p]
		if pr == nil || len(pr.labels) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(e.own)+len(pr.labels))
			maps.Copy(out, e.own)
		}
		for k, v := range pr.labels {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	if out == nil {
		out = e.own
	}
	e.labels = out
}

// endpointBase is the part of a local endpoint's ruleset entry that does
// not depend on policy.
func (e *entity) endpointBase() ruleset.Endpoint {
	ep := ruleset.Endpoint{ID: e.key, Interface: e.iface, Addrs: e.nets}
	if e.kind == kindWEP {
		ep.Kind = ruleset.Workload
	} else {
		ep.Kind = ruleset.Host
	}
	return ep
}
