package api

import (
	"fmt"
	"strings"

	"github.com/onecalico/calico/internal/selector"
)

// Action is what a rule does with a matching packet.
type Action string

// Rule actions.
const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Log   Action = "Log"
	Pass  Action = "Pass"
)

// PolicyType says which direction a policy applies to.
type PolicyType string

// Policy types.
const (
	PolicyTypeIngress PolicyType = "Ingress"
	PolicyTypeEgress  PolicyType = "Egress"
)

// Rule is one match-and-act entry of a policy or profile. Source and
// Destination are always written (as {} when empty), as upstream v3.32 does.
type Rule struct {
	Action      Action        `json:"action"`
	IPVersion   *int          `json:"ipVersion,omitempty"`
	Protocol    *Protocol     `json:"protocol,omitempty"`
	ICMP        *ICMPFields   `json:"icmp,omitempty"`
	NotProtocol *Protocol     `json:"notProtocol,omitempty"`
	NotICMP     *ICMPFields   `json:"notICMP,omitempty"`
	Source      EntityRule    `json:"source"`
	Destination EntityRule    `json:"destination"`
	HTTP        *HTTPMatch    `json:"http,omitempty"`
	Metadata    *RuleMetadata `json:"metadata,omitempty"`
}

// HTTPPath matches an HTTP path exactly or by prefix.
type HTTPPath struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// HTTPMatch matches HTTP requests by method and path.
type HTTPMatch struct {
	Methods []string   `json:"methods,omitempty"`
	Paths   []HTTPPath `json:"paths,omitempty"`
}

// ICMPFields matches an ICMP type and optionally a code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// EntityRule is the source or destination half of a rule.
type EntityRule struct {
	Nets              []string             `json:"nets,omitempty"`
	Selector          string               `json:"selector,omitempty"`
	NamespaceSelector string               `json:"namespaceSelector,omitempty"`
	Services          *ServiceMatch        `json:"services,omitempty"`
	Ports             []Port               `json:"ports,omitempty"`
	NotNets           []string             `json:"notNets,omitempty"`
	NotSelector       string               `json:"notSelector,omitempty"`
	NotPorts          []Port               `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
}

// ServiceMatch names a Kubernetes Service.
type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// ServiceAccountMatch matches pods by service account.
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// RuleMetadata carries annotations on a rule.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ValidateRules checks a list of rules (field is e.g. "spec.ingress"). A
// field ending in "egress" is checked as egress rules, anything else as
// ingress: the direction decides which side of a rule may name Services.
func ValidateRules(field string, rules []Rule) error {
	egress := strings.HasSuffix(field, "egress")
	var es errs
	for i := range rules {
		es.add(rules[i].validate(fmt.Sprintf("%s[%d]", field, i), egress))
	}
	return es.err()
}

func (r *Rule) validate(f string, egress bool) error {
	var es errs
	es.add(oneOf(f+".action", r.Action, Allow, Deny, Log, Pass))
	if r.IPVersion != nil && *r.IPVersion != 4 && *r.IPVersion != 6 {
		es.add(fieldErr(f+".ipVersion", *r.IPVersion, "must be 4 or 6"))
	}
	for _, p := range []struct {
		name string
		v    *Protocol
	}{{"protocol", r.Protocol}, {"notProtocol", r.NotProtocol}} {
		if p.v != nil {
			if err := p.v.Validate(); err != nil {
				es.add(fieldErr(f+"."+p.name, p.v.String(), "%v", err))
			}
		}
	}
	if r.Protocol != nil && r.IPVersion != nil {
		switch {
		case r.Protocol.Number() == 1 && *r.IPVersion == 6:
			es.add(fieldErr(f+".ipVersion", 6, "protocol ICMP is IPv4 only: use ICMPv6"))
		case r.Protocol.Number() == 58 && *r.IPVersion == 4:
			es.add(fieldErr(f+".ipVersion", 4, "protocol ICMPv6 is IPv6 only: use ICMP"))
		}
	}
	for _, ic := range []struct {
		name string
		v    *ICMPFields
	}{{"icmp", r.ICMP}, {"notICMP", r.NotICMP}} {
		if ic.v == nil {
			continue
		}
		if ic.v.Type != nil && (*ic.v.Type < 0 || *ic.v.Type > 254) {
			es.add(fieldErr(f+"."+ic.name+".type", *ic.v.Type, "must be 0-254"))
		}
		if ic.v.Code != nil && (*ic.v.Code < 0 || *ic.v.Code > 255) {
			es.add(fieldErr(f+"."+ic.name+".code", *ic.v.Code, "must be 0-255"))
		}
		if ic.v.Code != nil && ic.v.Type == nil {
			es.add(fieldErr(f+"."+ic.name+".code", *ic.v.Code, "an ICMP code needs an ICMP type"))
		}
		if r.Protocol == nil || (r.Protocol.Number() != 1 && r.Protocol.Number() != 58) {
			es.add(fieldErr(f+"."+ic.name, nil, "ICMP matches need protocol ICMP or ICMPv6"))
		}
	}
	hasPorts := len(r.Source.Ports)+len(r.Source.NotPorts)+len(r.Destination.Ports)+len(r.Destination.NotPorts) > 0
	if hasPorts && (r.Protocol == nil || !r.Protocol.SupportsPorts()) {
		es.add(fieldErr(f+".protocol", nil, "rules with ports need protocol TCP, UDP, SCTP or UDPLite"))
	}
	if r.HTTP != nil {
		es.add(fieldErr(f+".http", nil, "this dataplane cannot enforce HTTP matches (there is no application-layer proxy): remove http from the rule"))
		if r.Action != Allow {
			es.add(fieldErr(f+".http", nil, "HTTP matches are only allowed on Allow rules"))
		}
		for i, p := range r.HTTP.Paths {
			if (p.Exact == "") == (p.Prefix == "") {
				es.add(fieldErr(fmt.Sprintf("%s.http.paths[%d]", f, i), nil, "set exactly one of exact and prefix"))
			}
		}
		for i, m := range r.HTTP.Methods {
			if m == "" {
				es.add(fieldErr(fmt.Sprintf("%s.http.methods[%d]", f, i), nil, "must not be empty"))
			}
		}
	}
	es.add(r.validateFamilies(f))
	es.add(r.Source.validate(f+".source", !egress))
	es.add(r.Destination.validate(f+".destination", egress))
	return es.err()
}

// validateFamilies refuses a rule whose CIDRs mix IPv4 and IPv6, or
// disagree with its ipVersion.
func (r *Rule) validateFamilies(f string) error {
	var v4, v6 bool
	for _, nets := range [][]string{r.Source.Nets, r.Source.NotNets, r.Destination.Nets, r.Destination.NotNets} {
		for _, n := range nets {
			if p, err := ParseAddrOrCIDR(n); err == nil {
				v4 = v4 || p.Addr().Is4()
				v6 = v6 || !p.Addr().Is4()
			}
		}
	}
	switch {
	case v4 && v6:
		return fieldErr(f, nil, "mixes IPv4 and IPv6 CIDRs: split it into one rule per IP version")
	case r.IPVersion != nil && *r.IPVersion == 4 && v6:
		return fieldErr(f+".ipVersion", 4, "the rule's CIDRs are IPv6")
	case r.IPVersion != nil && *r.IPVersion == 6 && v4:
		return fieldErr(f+".ipVersion", 6, "the rule's CIDRs are IPv4")
	}
	return nil
}

// validate checks one side of a rule. remote says whether this side is the
// far end of the traffic (the source of an ingress rule, the destination of
// an egress rule): only there may it name Kubernetes Services.
func (e *EntityRule) validate(f string, remote bool) error {
	var es errs
	es.add(validateCIDRList(f+".nets", e.Nets))
	es.add(validateCIDRList(f+".notNets", e.NotNets))
	for i, n := range e.NotNets {
		if p, err := ParseAddrOrCIDR(n); err == nil && p.Bits() == 0 {
			es.add(fieldErr(fmt.Sprintf("%s.notNets[%d]", f, i), n, "a catch-all CIDR in notNets matches nothing: remove the rule or use nets"))
		}
	}
	for _, sel := range []struct{ name, s string }{{"selector", e.Selector}, {"notSelector", e.NotSelector}, {"namespaceSelector", e.NamespaceSelector}} {
		if sel.s == "" {
			continue
		}
		if err := ValidateSelector(f+"."+sel.name, sel.s); err != nil {
			es.add(err)
		} else if sel.name != "namespaceSelector" && selectorUsesGlobal(sel.s) {
			es.add(fieldErr(f+"."+sel.name, sel.s, "global() may only be used in a namespaceSelector"))
		}
	}
	if e.ServiceAccounts != nil && e.ServiceAccounts.Selector != "" {
		if err := ValidateSelector(f+".serviceAccounts.selector", e.ServiceAccounts.Selector); err != nil {
			es.add(err)
		} else if selectorUsesGlobal(e.ServiceAccounts.Selector) {
			es.add(fieldErr(f+".serviceAccounts.selector", e.ServiceAccounts.Selector, "global() may only be used in a namespaceSelector"))
		}
	}
	if svc := e.Services; svc != nil {
		es.add(fieldErr(f+".services", nil, "this dataplane cannot enforce services matches (there are no Kubernetes Services in etcd mode): match nets or selectors instead"))
		if svc.Name == "" {
			es.add(fieldErr(f+".services.name", nil, "a service name is required"))
		} else {
			es.add(ValidateName(f+".services.name", svc.Name))
		}
		if svc.Namespace != "" {
			es.add(ValidateNamespace(f+".services.namespace", svc.Namespace))
		}
		if len(e.Nets)+len(e.NotNets) > 0 || e.Selector != "" || e.NotSelector != "" || e.NamespaceSelector != "" || e.ServiceAccounts != nil {
			es.add(fieldErr(f+".services", nil, "cannot be combined with nets, notNets, selector, notSelector, namespaceSelector or serviceAccounts"))
		}
		if !remote {
			es.add(fieldErr(f+".services", nil, "services may only match the remote end: the source of an ingress rule or the destination of an egress rule"))
		} else if strings.HasSuffix(f, ".destination") && len(e.Ports)+len(e.NotPorts) > 0 {
			es.add(fieldErr(f+".ports", nil, "ports cannot be combined with services on egress rules: the service's own ports are used"))
		}
	}
	return es.err()
}

// selectorUsesGlobal reports whether a valid selector calls global(),
// looking at its canonical form outside quoted strings.
func selectorUsesGlobal(s string) bool {
	sel, err := selector.Parse(s)
	if err != nil {
		return false
	}
	c := sel.String()
	var quote byte
	for i := 0; i < len(c); i++ {
		switch {
		case quote != 0:
			if c[i] == quote {
				quote = 0
			}
		case c[i] == '"' || c[i] == '\'':
			quote = c[i]
		case strings.HasPrefix(c[i:], "global()"):
			return true
		}
	}
	return false
}
