package datastore

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// storeValidators are the per-kind checks that need to read the datastore.
var storeValidators = map[string]func(ctx context.Context, c *Client, r api.Resource) error{
	api.KindIPPool:              checkIPPool,
	api.KindNetworkPolicy:       checkPolicyTier,
	api.KindGlobalNetworkPolicy: checkPolicyTier,
}

// checkPolicyTier refuses a (Global)NetworkPolicy whose tier does not exist,
// as upstream does: tiers are created explicitly, policies then join them.
// The built-in tiers count as existing: EnsureInitialized creates them
// before the first write, and a writer checks a whole input before it
// writes anything (so on a fresh datastore they may not be there yet).
func checkPolicyTier(ctx context.Context, c *Client, r api.Resource) error {
	var tier string
	switch p := r.(type) {
	case *api.NetworkPolicy:
		tier = p.Spec.Tier
	case *api.GlobalNetworkPolicy:
		tier = p.Spec.Tier
	}
	tier = api.PolicyTier(tier)
	for _, t := range api.DefaultTiers() {
		if t.Name == tier {
			return nil
		}
	}
	_, err := c.KV.Get(ctx, api.ResourcePrefix+"tiers/"+tier)
	if errors.Is(err, kv.ErrNotFound) {
		return &api.FieldError{Field: "spec.tier", Value: tier,
			Reason: fmt.Sprintf("tier %q does not exist: create it first", tier)}
	}
	return err
}

// checkIPPool refuses a pool that overlaps another pool, or that would cover
// existing blocks of a different size (they were carved from another pool).
func checkIPPool(ctx context.Context, c *Client, r api.Resource) error {
	p := r.(*api.IPPool)
	cidr := p.Prefix()
	pools, _, err := ListOf[*api.IPPool](ctx, c, api.KindIPPool, "")
	if err != nil {
		return err
	}
	for _, o := range pools {
		if o.Name == p.Name {
			continue
		}
		if oc := o.Prefix(); oc.IsValid() && oc.Overlaps(cidr) {
			return &api.FieldError{Field: "spec.cidr", Value: p.Spec.CIDR,
				Reason: fmt.Sprintf("overlaps IPPool %q (%s)", o.Name, o.Spec.CIDR)}
		}
	}
	fam := 4
	if cidr.Addr().Is6() {
		fam = 6
	}
	blocks, _, err := c.KV.List(ctx, api.BlockPrefix(fam))
	if err != nil {
		return err
	}
	for _, item := range blocks {
		b, err := api.ParseBlockKey(item.Key)
		if err != nil || !b.Overlaps(cidr) {
			continue
		}
		if b.Bits() != p.Spec.BlockSize {
			return &api.FieldError{Field: "spec.cidr", Value: p.Spec.CIDR,
				Reason: fmt.Sprintf("overlaps existing block %s whose size /%d differs from this pool's blockSize %d", b, b.Bits(), p.Spec.BlockSize)}
		}
	}
	return nil
}
