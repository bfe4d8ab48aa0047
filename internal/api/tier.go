package api

// KindTier is the Tier kind.
const KindTier = "Tier"

// Built-in tiers and their orders, as upstream creates them.
const (
	DefaultTierName      = "default"
	KubeAdminTierName    = "kube-admin"
	KubeBaselineTierName = "kube-baseline"
	DefaultTierOrder     = 1e6
	KubeAdminTierOrder   = 1000
	KubeBaselineOrder    = 1e7
)

// Tier groups policies; tiers are evaluated in order.
type Tier struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       TierSpec   `json:"spec"`
	Status     TierStatus `json:"status"`
}

// TierSpec orders the tier and says what happens when nothing in it matches.
type TierSpec struct {
	Order         *float64 `json:"order,omitempty"`
	DefaultAction *Action  `json:"defaultAction,omitempty"`
}

// TierStatus is empty and always written as {}, like upstream.
type TierStatus struct{}

// NewTier returns an empty Tier with its TypeMeta set.
func NewTier() *Tier {
	return &Tier{TypeMeta: TypeMeta{Kind: KindTier, APIVersion: APIVersion}}
}

// DefaultTiers returns the tiers upstream v3.32 creates on first write.
func DefaultTiers() []*Tier {
	mk := func(name string, order float64, action Action) *Tier {
		t := NewTier()
		t.Name = name
		t.Spec.Order = &order
		t.Spec.DefaultAction = &action
		return t
	}
	return []*Tier{
		mk(DefaultTierName, DefaultTierOrder, Deny),
		mk(KubeAdminTierName, KubeAdminTierOrder, Pass),
		mk(KubeBaselineTierName, KubeBaselineOrder, Pass),
	}
}

var tierName = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Default sets the default action to Deny, as upstream does.
func (t *Tier) Default() {
	if t.Spec.DefaultAction == nil {
		a := Deny
		t.Spec.DefaultAction = &a
	}
}

// Validate checks the tier name (no dots: tier names prefix policy names) and action.
func (t *Tier) Validate() error {
	var es errs
	if len(t.Name) > 63 || !tierName().MatchString(t.Name) {
		es.add(fieldErr("metadata.name", t.Name, "tier names are lower case alphanumeric or '-', at most 63 characters, without dots"))
	}
	if t.Spec.DefaultAction != nil {
		es.add(oneOf("spec.defaultAction", *t.Spec.DefaultAction, Deny, Pass))
	}
	if t.Name == DefaultTierName && t.Spec.Order != nil && *t.Spec.Order != DefaultTierOrder {
		es.add(fieldErr("spec.order", *t.Spec.Order, "the default tier's order is fixed at %g", float64(DefaultTierOrder)))
	}
	return es.err()
}
