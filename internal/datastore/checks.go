package datastore

import (
	"context"
	"fmt"

	"github.com/onecalico/calico/internal/api"
)

// storeValidators are the per-kind checks that need to read the datastore.
var storeValidators = map[string]func(ctx context.Context, c *Client, r api.Resource) error{
	api.KindIPPool: checkIPPool,
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
