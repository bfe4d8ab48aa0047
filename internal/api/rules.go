package api

import "fmt"

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

// ValidateRules checks a list of rules (field is e.g. "spec.ingress").
func ValidateRules(field string, rules []Rule) error {
	var es errs
	for i := range rules {
		es.add(rules[i].validate(fmt.Sprintf("%s[%d]", field, i)))
	}
	return es.err()
}

func (r *Rule) validate(f string) error {
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
	es.add(r.Source.validate(f + ".source"))
	es.add(r.Destination.validate(f + ".destination"))
	return es.err()
}

func (e *EntityRule) validate(f string) error {
	var es errs
	es.add(validateCIDRList(f+".nets", e.Nets))
	es.add(validateCIDRList(f+".notNets", e.NotNets))
	for name, s := range map[string]string{"selector": e.Selector, "notSelector": e.NotSelector, "namespaceSelector": e.NamespaceSelector} {
		if s != "" {
			es.add(ValidateSelector(f+"."+name, s))
		}
	}
	if e.ServiceAccounts != nil && e.ServiceAccounts.Selector != "" {
		es.add(ValidateSelector(f+".serviceAccounts.selector", e.ServiceAccounts.Selector))
	}
	return es.err()
}
