package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/dataplane/link"
)

// check handles CNI CHECK (upstream's only prints OK). It verifies, against
// prevResult: the container interface with its addresses and routes, the
// host veth and its routes; the endpoint record (exists, this container's,
// same addresses, host interface and MAC); and the IPAM allocation (the
// handle holds exactly those addresses, or the IPAM plugin's own CHECK).
// Every problem found is reported in one error: code 3 when the container
// has no endpoint at all, 999 otherwise.
func (p *plugin) check(args *skel.CmdArgs) error {
	r, err := p.prepare(args)
	if err != nil {
		return err
	}
	prev, err := prevResult(r)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	// What prevResult says.
	contIdx := slices.IndexFunc(prev.Interfaces, func(i *types100.Interface) bool { return i.Name == args.IfName && i.Sandbox != "" })
	if contIdx < 0 {
		bad("prevResult lists no interface %s in a sandbox", args.IfName)
	}
	// The host interface is upstream's name or, when another workload held
	// that, the alternative recorded on the endpoint.
	names := r.hostIfCandidates()
	if i := slices.IndexFunc(prev.Interfaces, func(i *types100.Interface) bool { return i.Sandbox == "" && slices.Contains(names, i.Name) }); i >= 0 {
		r.hostIf = prev.Interfaces[i].Name
	} else {
		bad("prevResult does not list the host interface %s", r.hostIf)
	}
	var addrs []netip.Prefix
	for _, ip := range prev.IPs {
		if ip.Interface != nil && *ip.Interface != contIdx {
			continue
		}
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("prevResult has a bad address %v", ip.Address), "")
		}
		a = a.Unmap()
		addrs = append(addrs, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(addrs) == 0 {
		bad("prevResult has no address for interface %s", args.IfName)
	}
	mac := ""
	if contIdx >= 0 {
		mac = prev.Interfaces[contIdx].Mac
	}

	// The kernel.
	if err := link.CheckWorkload(r.workload(p.hostNS, r.conf.MTU, addrs)); err != nil {
		msg := err.Error()
		if errors.Is(err, link.ErrCheckFailed) {
			msg = strings.TrimPrefix(msg, link.ErrCheckFailed.Error()+": ")
		}
		bad("%s", strings.ReplaceAll(msg, "\n", "; "))
	}

	// The records.
	if err := r.s.Connect(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget) // as ADD's and DEL's
	st, err := r.readState(ctx)
	if err != nil {
		return cniipam.CNIError(err)
	}
	code := uint(types.ErrInternal)
	if w := st.wep; w == nil {
		code = types.ErrUnknownContainer
		bad("workload endpoint %s/%s does not exist", r.wepNS, r.wepName())
	} else {
		name := r.wepNS + "/" + r.wepName()
		if w.Spec.ContainerID != args.ContainerID {
			bad("workload endpoint %s belongs to container %s", name, w.Spec.ContainerID)
		}
		if have, err := wepAddrs(w); err != nil {
			bad("%v", err)
		} else if !samePrefixes(have, addrs) {
			bad("workload endpoint %s has addresses %v, prevResult %v", name, w.Spec.IPNetworks, addrs)
		}
		if w.Spec.InterfaceName != r.hostIf {
			bad("workload endpoint %s has interfaceName %q, want %q", name, w.Spec.InterfaceName, r.hostIf)
		}
		if mac != "" && !strings.EqualFold(w.Spec.MAC, mac) {
			bad("workload endpoint %s has mac %q, prevResult %q", name, w.Spec.MAC, mac)
		}
	}

	// The addresses.
	if r.inproc {
		want := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			want[i] = a.Addr()
		}
		if err := r.s.CheckHandle(ctx, r.handle, want, true); err != nil {
			var te *types.Error
			if errors.As(err, &te) {
				bad("%s", te.Msg)
			} else {
				bad("%v", err)
			}
		}
	} else if err := invoke.DelegateCheck(ctx, r.conf.IPAM.Type, r.conf.Raw, nil); err != nil {
		bad("%v", delegateError(r.conf.IPAM.Type, "CHECK", err).(*types.Error).Msg)
	}

	if len(problems) > 0 {
		return types.NewError(code, fmt.Sprintf("CHECK of container %s interface %s failed: %s", args.ContainerID, args.IfName, strings.Join(problems, "; ")), "")
	}
	return nil
}

// prevResult decodes the netconf's prevResult (in the netconf's version).
func prevResult(r *request) (*types100.Result, error) {
	if len(r.conf.PrevResult) == 0 {
		return nil, errors.New("CHECK needs the ADD result in the netconf's prevResult")
	}
	res, err := cniversion.NewResult(r.conf.CNIVersion, r.conf.PrevResult)
	if err != nil {
		return nil, fmt.Errorf(`netconf field "prevResult": %v`, err)
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf(`netconf field "prevResult": %v`, err)
	}
	return r100, nil
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
