package api

// KindProfile is the Profile kind.
const KindProfile = "Profile"

// DefaultAllowProfile is the built-in profile upstream synthesises on read; it is never stored.
const DefaultAllowProfile = "projectcalico-default-allow"

// Profile is a set of rules and labels endpoints inherit by naming it.
type Profile struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       ProfileSpec `json:"spec"`
}

// ProfileSpec holds a profile's rules and the labels it applies.
type ProfileSpec struct {
	Ingress       []Rule            `json:"ingress,omitempty"`
	Egress        []Rule            `json:"egress,omitempty"`
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// NewProfile returns an empty Profile with its TypeMeta set.
func NewProfile() *Profile {
	return &Profile{TypeMeta: TypeMeta{Kind: KindProfile, APIVersion: APIVersion}}
}

// NewDefaultAllowProfile returns the synthetic allow-all profile as upstream shows it.
func NewDefaultAllowProfile() *Profile {
	p := NewProfile()
	p.Name = DefaultAllowProfile
	p.ResourceVersion = "1"
	p.Spec.Ingress = []Rule{{Action: Allow}}
	p.Spec.Egress = []Rule{{Action: Allow}}
	return p
}

// Validate checks the rules and labels.
func (p *Profile) Validate() error {
	var es errs
	es.add(ValidateRules("spec.ingress", p.Spec.Ingress))
	es.add(ValidateRules("spec.egress", p.Spec.Egress))
	es.add(ValidateLabels("spec.labelsToApply", p.Spec.LabelsToApply))
	return es.err()
}
