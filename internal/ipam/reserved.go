package ipam

import (
	"encoding/json"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// reservations are the addresses IPReservations forbid handing out.
type reservations []netip.Prefix

// decodeReservations collects the reserved CIDRs of every IPReservation.
// Values that do not parse are skipped, as upstream's list does.
func decodeReservations(items []*kv.KV) reservations {
	var out reservations
	for _, item := range items {
		r := api.NewIPReservation()
		if err := json.Unmarshal(item.Value, r); err != nil {
			continue
		}
		for _, s := range r.Spec.ReservedCIDRs {
			if p, err := api.ParseAddrOrCIDR(s); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

func (r reservations) contains(a netip.Addr) bool {
	for _, p := range r {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// overlaps reports whether any reservation overlaps block.
func (r reservations) overlaps(block netip.Prefix) bool {
	for _, p := range r {
		if p.Overlaps(block) {
			return true
		}
	}
	return false
}

// covers reports whether one reservation covers all of block.
func (r reservations) covers(block netip.Prefix) bool {
	for _, p := range r {
		if p.Bits() <= block.Bits() && p.Contains(block.Addr()) {
			return true
		}
	}
	return false
}
