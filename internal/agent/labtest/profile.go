package labtest

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// EnsureNetworkProfile creates the profile the calico CNI plugin creates
// for network name when it is missing (as the plugin does at ADD):
// ingress allowed from endpoints labelled name, egress allowed, the label
// applied to its endpoints. An existing profile is left as it is.
func (l *Lab) EnsureNetworkProfile(ctx context.Context, name string) error {
	p := api.NewProfile()
	p.Name = name
	in := api.Rule{Action: api.Allow}
	in.Source.Selector = fmt.Sprintf("has(%s)", name)
	p.Spec = api.ProfileSpec{
		Ingress:       []api.Rule{in},
		Egress:        []api.Rule{{Action: api.Allow}},
		LabelsToApply: map[string]string{name: ""},
	}
	if _, err := l.Client.Create(ctx, p); err != nil && !errors.Is(err, kv.ErrExists) {
		return fmt.Errorf("create profile %s: %w", name, err)
	}
	return nil
}

// OpenNetworkProfile applies network name's profile with ingress allowed
// from anywhere (the seed's edit of the CNI profile): other nodes' hosts
// and external hosts then reach the network's pods.
func (l *Lab) OpenNetworkProfile(ctx context.Context, name string) error {
	p := api.NewProfile()
	p.Name = name
	p.Spec = api.ProfileSpec{
		Ingress:       []api.Rule{{Action: api.Allow}},
		Egress:        []api.Rule{{Action: api.Allow}},
		LabelsToApply: map[string]string{name: ""},
	}
	if _, err := l.Client.Apply(ctx, p); err != nil {
		return fmt.Errorf("apply profile %s: %w", name, err)
	}
	return nil
}
