package api

import (
	"fmt"
	"math"
	"strings"
)

// Kinds of the policy resources.
const (
	KindNetworkPolicy       = "NetworkPolicy"
	KindGlobalNetworkPolicy = "GlobalNetworkPolicy"
)

// LabelTier is the label upstream sets on every (Global)NetworkPolicy to
// the name of its tier.
const LabelTier = "projectcalico.org/tier"

// PerfHintAssumeNeededOnEveryNode is the only performance hint upstream knows.
const PerfHintAssumeNeededOnEveryNode = "AssumeNeededOnEveryNode"

// Name prefixes of policies other components generate; upstream accepts
// them in any tier without the "<tier>." rule.
var generatedPolicyPrefixes = []string{"knp.default.", "kcnp.kube-admin.", "kcnp.kube-baseline.", "ossg."}

// NetworkPolicy is a namespaced, tiered policy selecting endpoints in its namespace.
type NetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec has upstream's fields in upstream's order.
type NetworkPolicySpec struct {
	Tier                   string       `json:"tier,omitempty"`
	Order                  *float64     `json:"order,omitempty"`
	Ingress                []Rule       `json:"ingress,omitempty"`
	Egress                 []Rule       `json:"egress,omitempty"`
	Selector               string       `json:"selector,omitempty"`
	Types                  []PolicyType `json:"types,omitempty"`
	ServiceAccountSelector string       `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []string     `json:"performanceHints,omitempty"`
}

// GlobalNetworkPolicy is a cluster-wide tiered policy.
type GlobalNetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       GlobalNetworkPolicySpec `json:"spec"`
}

// GlobalNetworkPolicySpec has upstream's fields in upstream's order.
type GlobalNetworkPolicySpec struct {
	Tier                   string       `json:"tier,omitempty"`
	Order                  *float64     `json:"order,omitempty"`
	Ingress                []Rule       `json:"ingress,omitempty"`
	Egress                 []Rule       `json:"egress,omitempty"`
	Selector               string       `json:"selector,omitempty"`
	Types                  []PolicyType `json:"types,omitempty"`
	DoNotTrack             bool         `json:"doNotTrack,omitempty"`
	PreDNAT                bool         `json:"preDNAT,omitempty"`
	ApplyOnForward         bool         `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string       `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string       `json:"namespaceSelector,omitempty"`
	PerformanceHints       []string     `json:"performanceHints,omitempty"`
}

// NewNetworkPolicy returns an empty NetworkPolicy with its TypeMeta set.
func NewNetworkPolicy() *NetworkPolicy {
	return &NetworkPolicy{TypeMeta: TypeMeta{Kind: KindNetworkPolicy, APIVersion: APIVersion}}
}

// NewGlobalNetworkPolicy returns an empty GlobalNetworkPolicy with its TypeMeta set.
func NewGlobalNetworkPolicy() *GlobalNetworkPolicy {
	return &GlobalNetworkPolicy{TypeMeta: TypeMeta{Kind: KindGlobalNetworkPolicy, APIVersion: APIVersion}}
}

// PolicyTier returns the tier a policy spec names, "default" when empty.
func PolicyTier(tier string) string {
	if tier == "" {
		return DefaultTierName
	}
	return tier
}

// DefaultPolicyTypes returns the types upstream gives a policy that names
// none: Ingress when it has no egress rules (even with no rules at all),
// Egress when it has only egress rules, both when it has both.
func DefaultPolicyTypes(ingress, egress []Rule) []PolicyType {
	switch {
	case len(egress) == 0:
		return []PolicyType{PolicyTypeIngress}
	case len(ingress) == 0:
		return []PolicyType{PolicyTypeEgress}
	}
	return []PolicyType{PolicyTypeIngress, PolicyTypeEgress}
}

// defaultPolicy applies what upstream's policy defaulting does: the tier
// (empty means "default"), the types, and the tier label.
func defaultPolicy(m *ObjectMeta, tier *string, ingress, egress []Rule, types *[]PolicyType) {
	*tier = PolicyTier(*tier)
	if len(*types) == 0 {
		*types = DefaultPolicyTypes(ingress, egress)
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[LabelTier] = *tier
}

// Default sets the namespace ("default" when empty), tier, types and tier label.
func (p *NetworkPolicy) Default() {
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	defaultPolicy(&p.ObjectMeta, &p.Spec.Tier, p.Spec.Ingress, p.Spec.Egress, &p.Spec.Types)
}

// Default sets the tier, types and tier label.
func (p *GlobalNetworkPolicy) Default() {
	defaultPolicy(&p.ObjectMeta, &p.Spec.Tier, p.Spec.Ingress, p.Spec.Egress, &p.Spec.Types)
}

// ValidatePolicyName applies the naming rule of v3.30-v3.32: a policy in the
// default tier is named plainly ("allow-dns") or, as older releases stored
// it, "default.allow-dns"; a policy in any other tier must be named
// "<tier>.<name>". Names other components generate (knp.default.*, ...)
// are accepted as they are.
func ValidatePolicyName(name, tier string) error {
	tier = PolicyTier(tier)
	for _, p := range generatedPolicyPrefixes {
		if strings.HasPrefix(name, p) {
			return nil
		}
	}
	if strings.HasPrefix(name, tier+".") && len(name) > len(tier)+1 {
		return nil
	}
	if tier == DefaultTierName {
		if !strings.Contains(name, ".") {
			return nil
		}
		return fieldErr("metadata.name", name, "a policy in the default tier may contain a '.' only after a \"default.\" prefix")
	}
	return fieldErr("metadata.name", name, "a policy in tier %q must be named %q: rename it to %s.<name>", tier, tier+".<name>", tier)
}

// policyCommon is what NetworkPolicy and GlobalNetworkPolicy share, for validation.
type policyCommon struct {
	name, tier, selector, saSelector string
	order                            *float64
	ingress, egress                  []Rule
	types                            []PolicyType
	hints                            []string
}

func (c *policyCommon) validate() error {
	var es errs
	if c.tier != "" && (len(c.tier) > 63 || !tierName().MatchString(c.tier)) {
		es.add(fieldErr("spec.tier", c.tier, "not a valid tier name"))
	} else {
		es.add(ValidatePolicyName(c.name, c.tier))
	}
	if c.order != nil && (math.IsNaN(*c.order) || math.IsInf(*c.order, 0)) {
		es.add(fieldErr("spec.order", nil, "must be a finite number"))
	}
	for name, s := range map[string]string{"spec.selector": c.selector, "spec.serviceAccountSelector": c.saSelector} {
		if s == "" {
			continue
		}
		if err := ValidateSelector(name, s); err != nil {
			es.add(err)
		} else if selectorUsesGlobal(s) {
			es.add(fieldErr(name, s, "global() may only be used in a namespaceSelector"))
		}
	}
	var ingress, egress bool
	for i, t := range c.types {
		f := fmt.Sprintf("spec.types[%d]", i)
		es.add(oneOf(f, t, PolicyTypeIngress, PolicyTypeEgress))
		if (t == PolicyTypeIngress && ingress) || (t == PolicyTypeEgress && egress) {
			es.add(fieldErr(f, string(t), "listed twice"))
		}
		ingress = ingress || t == PolicyTypeIngress
		egress = egress || t == PolicyTypeEgress
	}
	if len(c.types) > 0 {
		if len(c.ingress) > 0 && !ingress {
			es.add(fieldErr("spec.types", nil, "the policy has ingress rules but its types do not include Ingress"))
		}
		if len(c.egress) > 0 && !egress {
			es.add(fieldErr("spec.types", nil, "the policy has egress rules but its types do not include Egress"))
		}
	}
	seen := map[string]bool{}
	for i, h := range c.hints {
		f := fmt.Sprintf("spec.performanceHints[%d]", i)
		es.add(oneOf(f, h, PerfHintAssumeNeededOnEveryNode))
		if seen[h] {
			es.add(fieldErr(f, h, "listed twice"))
		}
		seen[h] = true
	}
	es.add(ValidateRules("spec.ingress", c.ingress))
	es.add(ValidateRules("spec.egress", c.egress))
	return es.err()
}

// Validate checks the tiered name, selectors, types, hints and rules.
func (p *NetworkPolicy) Validate() error {
	s := &p.Spec
	c := policyCommon{name: p.Name, tier: s.Tier, selector: s.Selector, saSelector: s.ServiceAccountSelector,
		order: s.Order, ingress: s.Ingress, egress: s.Egress, types: s.Types, hints: s.PerformanceHints}
	return c.validate()
}

// Validate checks what NetworkPolicy checks, plus upstream's rules for
// untracked and pre-DNAT policy: both need applyOnForward, they exclude
// each other, and pre-DNAT policy has no egress.
func (p *GlobalNetworkPolicy) Validate() error {
	s := &p.Spec
	c := policyCommon{name: p.Name, tier: s.Tier, selector: s.Selector, saSelector: s.ServiceAccountSelector,
		order: s.Order, ingress: s.Ingress, egress: s.Egress, types: s.Types, hints: s.PerformanceHints}
	var es errs
	es.add(c.validate())
	if s.NamespaceSelector != "" {
		es.add(ValidateSelector("spec.namespaceSelector", s.NamespaceSelector))
	}
	if s.DoNotTrack && s.PreDNAT {
		es.add(fieldErr("spec.preDNAT", true, "cannot be set together with doNotTrack"))
	}
	if s.DoNotTrack && !s.ApplyOnForward {
		es.add(fieldErr("spec.applyOnForward", false, "must be true when doNotTrack is set"))
	}
	if s.PreDNAT && !s.ApplyOnForward {
		es.add(fieldErr("spec.applyOnForward", false, "must be true when preDNAT is set"))
	}
	if s.PreDNAT {
		if len(s.Egress) > 0 {
			es.add(fieldErr("spec.egress", nil, "a preDNAT policy cannot have egress rules"))
		}
		for _, t := range s.Types {
			if t == PolicyTypeEgress {
				es.add(fieldErr("spec.types", nil, "a preDNAT policy cannot have type Egress"))
			}
		}
	}
	return es.err()
}
