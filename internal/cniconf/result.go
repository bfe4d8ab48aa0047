package cniconf

import (
	"net"
	"net/netip"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/containernetworking/cni/pkg/types"
)

// IPNet converts a prefix to the net.IPNet the CNI types use, keeping the
// host bits (10.65.0.5/26 stays 10.65.0.5/26).
func IPNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// IPAMResult is calico-ipam's result: each address as given (upstream
// returns it with the block's mask), and a route whose destination is the
// same address and mask. Print it with types.PrintResult(r, cniVersion).
func IPAMResult(addrs []netip.Prefix) *types100.Result {
	r := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	for _, a := range addrs {
		n := IPNet(a)
		r.IPs = append(r.IPs, &types100.IPConfig{Address: n})
		r.Routes = append(r.Routes, &types.Route{Dst: n})
	}
	return r
}
