package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
)

// undoTimeout bounds the clean-up after a failed ADD (the ADD's own
// context may be what expired).
const undoTimeout = 30 * time.Second

// add handles CNI ADD. Order: one read (readiness, endpoint, profile,
// handle); addresses; plumbing; profile if missing; endpoint. A failure
// at any step undoes the steps before it. If the endpoint already exists
// for this container the ADD is a repeat: see readd.
func (p *plugin) add(args *skel.CmdArgs) error {
	ph := newPhases(p.start)
	r, err := p.prepare(args)
	if err != nil {
		return err
	}
	mtu, err := r.conf.PodMTU(p.env.ReadFile)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if err := r.s.Connect(); err != nil {
		return err
	}
	ph.mark("parse")
	// Every datastore round trip of the ADD shares one budget, so an
	// unreachable datastore fails it well inside a runtime's 5 s; the undo
	// of a failed ADD has a context of its own (undoTimeout).
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget)
	st, err := r.readState(ctx)
	if err != nil {
		return cniipam.CNIError(err)
	}
	ph.mark("read")
	if err := st.readyErr(); err != nil {
		return err
	}
	var res *types100.Result
	if st.wep != nil && st.wep.Spec.ContainerID == args.ContainerID {
		res, err = p.readd(ctx, r, st, mtu, ph)
	} else {
		res, err = p.addNew(ctx, r, st, mtu, ph)
	}
	if err != nil {
		return err
	}
	if r.s.Debug() {
		addrs := make([]string, len(res.IPs))
		for i, ip := range res.IPs {
			addrs[i] = ip.Address.String()
		}
		p.logDone(r, "ADD", ph, "endpoint", r.wepKey, "addresses", addrs)
	}
	return types.PrintResult(res, r.conf.CNIVersion)
}

// ipamResult is what the IPAM step produced.
type ipamResult struct {
	addrs  []netip.Prefix // as IPAM returned them (calico-ipam: with the block's mask)
	routes []*types.Route
	dns    types.DNS
}

// addNew plumbs a container that has no endpoint yet.
//
// With Calico IPAM the address families are known before the addresses
// are, so the veth pair is created (with its sysctls, both ends up) while
// IPAM allocates; the addresses and routes follow. With another IPAM
// plugin the steps run one after the other.
func (p *plugin) addNew(ctx context.Context, r *request, st *state, mtu int, ph *phases) (res *types100.Result, err error) {
	a := r.args
	var veth *link.Veth
	var vethErr error
	vethDone := make(chan struct{})
	if v4, v6 := r.families(); r.inproc {
		go func() {
			defer close(vethDone)
			veth, vethErr = r.createVeth(p.hostNS, mtu, v4, v6)
		}()
	} else {
		close(vethDone)
	}
	// dropVeth undoes CreateVeth when a later step fails.
	dropVeth := func() {
		<-vethDone
		if veth != nil {
			if derr := veth.Remove(); derr != nil {
				r.s.Log.Error("undo a failed ADD: remove its veth", "interface", r.hostIf, "err", derr)
			}
			veth.Close()
			veth = nil
		}
	}
	ir, err := r.allocate(ctx, st)
	if err != nil {
		dropVeth()
		return nil, err
	}
	defer func() {
		if err != nil {
			uctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
			defer cancel()
			if uerr := r.releaseNew(uctx); uerr != nil {
				r.s.Log.Error("undo a failed ADD: release its addresses", "handle", r.handle, "err", uerr)
				err = withUndoError(err, "release the addresses", uerr)
			}
		}
	}()
	ph.mark("ipam")
	addrs := make([]netip.Prefix, len(ir.addrs))
	for i, x := range ir.addrs {
		addrs[i] = netip.PrefixFrom(x.Addr(), x.Addr().BitLen())
	}

	var lres link.WorkloadResult
	<-vethDone
	switch {
	case vethErr != nil:
		err = vethErr
	case veth != nil:
		lres, err = veth.Configure(addrs)
		if err != nil {
			dropVeth()
		} else {
			veth.Close()
		}
	default:
		lres, err = r.setupWorkload(p.hostNS, mtu, addrs)
	}
	if err != nil {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("set up interface %s of container %s (host side %s): %v", a.IfName, a.ContainerID, r.hostIf, err), "")
	}
	defer func() {
		if err != nil {
			if uerr := link.RemoveWorkload(r.removal(p.hostNS, addrs)); uerr != nil {
				r.s.Log.Error("undo a failed ADD: remove its interfaces", "interface", r.hostIf, "err", uerr)
				err = withUndoError(err, "remove the interfaces", uerr)
			}
		}
	}()
	ph.mark("netlink")

	mac := lres.ContainerMAC.String()
	c := datastore.NewClient(r.s.Store)
	if err := r.ensureProfile(ctx, c, st); err != nil {
		return nil, cniipam.CNIError(err)
	}
	wep := r.newWEP(addrs, mac)
	if st.wep != nil {
		// A Kubernetes pod's endpoint left by an earlier sandbox of the
		// same pod (no DEL reached us): this sandbox takes it over.
		r.s.Log.Warn("replacing the endpoint of an earlier sandbox of this pod", "endpoint", r.wepKey, "old container", st.wep.Spec.ContainerID)
		wep.ResourceVersion, wep.UID, wep.CreationTimestamp = st.wep.ResourceVersion, st.wep.UID, st.wep.CreationTimestamp
		_, err = c.Update(ctx, wep)
	} else {
		_, err = c.Create(ctx, wep)
	}
	if err != nil {
		return nil, cniipam.CNIError(fmt.Errorf("record workload endpoint %s/%s: %w", r.wepNS, r.wepName(), err))
	}
	ph.mark("record")
	return r.result(addrs, ir.routes, ir.dns, mac), nil
}

// allocate gets the container's addresses: in-process from Calico IPAM
// under the host lock, or from the IPAM plugin in CNI_PATH.
func (r *request) allocate(ctx context.Context, st *state) (*ipamResult, error) {
	if r.inproc {
		unlock, err := r.s.Lock()
		if err != nil {
			return nil, err
		}
		defer unlock()
		if st.handle != nil {
			// An earlier ADD of this container allocated but never recorded
			// an endpoint (it was killed): start afresh rather than hold
			// two sets of addresses under one handle, once no host route
			// to the old addresses is left (see gcAddresses).
			r.s.Log.Warn("releasing the addresses of an interrupted earlier ADD of this container", "handle", r.handle)
			if err := r.dropInterrupted(ctx); err != nil {
				return nil, err
			}
		}
		addrs, err := r.s.Assign(ctx, r.node, r.handle, r.cargs)
		if err != nil {
			return nil, err
		}
		out := &ipamResult{addrs: addrs}
		for _, x := range addrs {
			out.routes = append(out.routes, &types.Route{Dst: cniconf.IPNet(x)})
		}
		return out, nil
	}
	res, err := invoke.DelegateAdd(ctx, r.conf.IPAM.Type, r.conf.Raw, nil)
	if err != nil {
		return nil, delegateError(r.conf.IPAM.Type, "ADD", err)
	}
	out := &ipamResult{}
	r100, err := types100.NewResultFromResult(res)
	if err == nil && len(r100.IPs) == 0 {
		err = errors.New("it returned no IP address")
	}
	if err == nil {
		out.routes, out.dns = r100.Routes, r100.DNS
		for _, ip := range r100.IPs {
			a, ok := netip.AddrFromSlice(ip.Address.IP)
			if !ok {
				err = fmt.Errorf("it returned a bad address %v", ip.Address)
				break
			}
			ones, _ := ip.Address.Mask.Size()
			out.addrs = append(out.addrs, netip.PrefixFrom(a.Unmap(), ones))
		}
	}
	if err != nil {
		uctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
		defer cancel()
		if uerr := r.releaseNew(uctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %s: %v", r.conf.IPAM.Type, err), "")
	}
	return out, nil
}

// dropInterrupted removes the host veth an interrupted earlier ADD of this
// container left routing its addresses, then releases them.
func (r *request) dropInterrupted(ctx context.Context) error {
	ips, err := r.s.Alloc.IPsByHandle(ctx, r.handle)
	if err != nil && !errors.Is(err, ipam.ErrHandleNotFound) {
		return cniipam.CNIError(err)
	}
	addrs := make([]netip.Prefix, len(ips))
	for i, ip := range ips {
		addrs[i] = netip.PrefixFrom(ip, ip.BitLen())
	}
	if err := link.RemoveOrphanLinks(link.Orphan{Addrs: addrs, Prefix: vethPrefix}); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("release the addresses of an interrupted earlier ADD of container %s: %v", r.args.ContainerID, err), "")
	}
	return r.s.Release(ctx, r.handle)
}

// releaseNew releases what allocate got (not the legacy handle).
func (r *request) releaseNew(ctx context.Context) error {
	if r.inproc {
		unlock, err := r.s.Lock()
		if err != nil {
			return err
		}
		defer unlock()
		return r.s.Release(ctx, r.handle)
	}
	if err := invoke.DelegateDel(ctx, r.conf.IPAM.Type, r.conf.Raw, nil); err != nil {
		return delegateError(r.conf.IPAM.Type, "DEL", err)
	}
	return nil
}

// readd answers a repeated ADD of a container that has its endpoint: the
// same addresses and MAC, nothing allocated or created twice. If the
// interface was lost or broken it is plumbed again with the same
// addresses; if the IPAM handle was lost the same addresses are claimed
// again (or the ADD fails, saying who holds them now).
//
// The same container added under another network name (the endpoint does
// not list that network's profile yet) is upstream's multi-network case:
// the endpoint is reused as it is, with no IPAM call for the new network,
// and the network's profile is appended to it.
func (p *plugin) readd(ctx context.Context, r *request, st *state, mtu int, ph *phases) (*types100.Result, error) {
	a, wep := r.args, st.wep
	addrs, err := wepAddrs(wep)
	if err != nil || len(addrs) == 0 {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("workload endpoint %s/%s exists but its addresses are unusable (%v): delete the container and add it again", r.wepNS, r.wepName(), err), "")
	}
	if n := wep.Spec.InterfaceName; n != "" && slices.Contains(r.hostIfCandidates(), n) {
		r.hostIf = n
	}
	otherNet := !slices.Contains(wep.Spec.Profiles, r.conf.Name)
	var routes []*types.Route
	if r.inproc && !(otherNet && st.handle == nil) {
		h := st.handle
		if h == nil {
			if h, err = r.reclaim(ctx, addrs); err != nil {
				return nil, err
			}
		}
		for _, rt := range routesFromHandle(h, addrs) {
			routes = append(routes, &types.Route{Dst: cniconf.IPNet(rt)})
		}
	}
	ph.mark("ipam")
	mac := wep.Spec.MAC
	check := r.workload(p.hostNS, 0, addrs) // a changed MTU file is no reason to re-plumb
	if cerr := link.CheckWorkload(check); cerr != nil {
		r.s.Log.Info("repeated ADD: the interface is not as it was set up; plumbing it again with the same addresses", "endpoint", r.wepKey, "problem", cerr)
		if err := link.RemoveWorkload(r.removal(p.hostNS, addrs)); err != nil {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("remove the broken interface %s of container %s: %v", a.IfName, a.ContainerID, err), "")
		}
		lres, err := r.setupWorkload(p.hostNS, mtu, addrs)
		if err != nil {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("set up interface %s of container %s again: %v", a.IfName, a.ContainerID, err), "")
		}
		mac = lres.ContainerMAC.String()
	}
	ph.mark("netlink")
	c := datastore.NewClient(r.s.Store)
	changed := false
	if wep.Spec.MAC != mac || wep.Spec.InterfaceName != r.hostIf {
		wep.Spec.MAC, wep.Spec.InterfaceName, changed = mac, r.hostIf, true
	}
	if !slices.Contains(wep.Spec.Profiles, r.conf.Name) {
		wep.Spec.Profiles, changed = append(wep.Spec.Profiles, r.conf.Name), true
	}
	if changed {
		if _, err := c.Update(ctx, wep); err != nil {
			return nil, cniipam.CNIError(fmt.Errorf("update workload endpoint %s/%s: %w", r.wepNS, r.wepName(), err))
		}
	}
	if err := r.ensureProfile(ctx, c, st); err != nil {
		return nil, cniipam.CNIError(err)
	}
	ph.mark("record")
	return r.result(addrs, routes, types.DNS{}, mac), nil
}

// reclaim allocates addrs again under the container's handle after the
// handle disappeared (e.g. released by hand) while the endpoint lives on.
func (r *request) reclaim(ctx context.Context, addrs []netip.Prefix) (*api.Handle, error) {
	unlock, err := r.s.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	r.s.Log.Warn("repeated ADD: the container's IPAM handle is gone; claiming its addresses again", "handle", r.handle, "addresses", addrs)
	h := &api.Handle{Block: map[string]int{}}
	attrs := cniipam.Attrs(r.node, r.cargs, time.Now())
	for i, x := range addrs {
		got, err := r.s.Alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: x.Addr(), HandleID: r.handle, Attrs: attrs, Hostname: r.node})
		if err != nil {
			if i > 0 {
				_ = r.s.Release(ctx, r.handle)
			}
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("workload endpoint %s/%s has address %s but its IPAM handle %s is gone and the address cannot be allocated again: %v; delete the container and add it again", r.wepNS, r.wepName(), x.Addr(), r.handle, err), "")
		}
		h.Block[got.Masked().String()]++
	}
	return h, nil
}

// families are the address families Calico IPAM will assign.
func (r *request) families() (v4, v6 bool) {
	if ip := r.cargs.IP; ip.IsValid() {
		return ip.Is4(), ip.Is6()
	}
	return r.conf.IPAM.AssignIPv4, r.conf.IPAM.AssignIPv6
}

// removal is the teardown of the request's container, whose addresses
// are addrs (the proof that a host link found by name is its own).
func (r *request) removal(hostNS string, addrs []netip.Prefix) link.Removal {
	return link.Removal{HostNetNS: hostNS, ContainerNetNS: r.args.Netns, ContainerIf: r.args.IfName, HostIf: r.hostIf, HostIfAddrs: addrs}
}

// createVeth is link.CreateVeth under the first host veth name of
// hostIfCandidates that no other workload holds; r.hostIf is set to it.
func (r *request) createVeth(hostNS string, mtu int, v4, v6 bool) (*link.Veth, error) {
	var err error
	for _, name := range r.hostIfCandidates() {
		r.hostIf = name
		var v *link.Veth
		if v, err = link.CreateVeth(r.workload(hostNS, mtu, nil), v4, v6); !errors.Is(err, link.ErrHostIfTaken) {
			return v, err
		}
		r.s.Log.Info("host interface name held by another workload; trying the next", "interface", name, "err", err)
	}
	return nil, r.namesTaken(err)
}

// setupWorkload is link.SetupWorkload under the first free host veth name
// of hostIfCandidates; r.hostIf is set to it.
func (r *request) setupWorkload(hostNS string, mtu int, addrs []netip.Prefix) (link.WorkloadResult, error) {
	var err error
	for _, name := range r.hostIfCandidates() {
		r.hostIf = name
		var res link.WorkloadResult
		if res, err = link.SetupWorkload(r.workload(hostNS, mtu, addrs)); !errors.Is(err, link.ErrHostIfTaken) {
			return res, err
		}
		r.s.Log.Info("host interface name held by another workload; trying the next", "interface", name, "err", err)
	}
	return link.WorkloadResult{}, r.namesTaken(err)
}

func (r *request) namesTaken(err error) error {
	return fmt.Errorf("every host interface name for container %s (%s) is held by another workload: %w", r.args.ContainerID, strings.Join(r.hostIfCandidates(), ", "), err)
}

// workload is the plumbing of the request's container.
func (r *request) workload(hostNS string, mtu int, addrs []netip.Prefix) link.Workload {
	return link.Workload{
		HostNetNS:         hostNS,
		ContainerNetNS:    r.args.Netns,
		ContainerIf:       r.args.IfName,
		HostIf:            r.hostIf,
		MTU:               mtu,
		Addrs:             addrs,
		AllowIPForwarding: r.conf.ContainerSettings.AllowIPForwarding,
	}
}

// result is the ADD result as upstream prints it: the host veth and the
// container interface, the addresses as /32 and /128 on interface 1, and
// IPAM's routes.
func (r *request) result(addrs []netip.Prefix, routes []*types.Route, dns types.DNS, mac string) *types100.Result {
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: r.hostIf},
			{Name: r.args.IfName, Mac: mac, Mtu: r.conf.MTU, Sandbox: r.args.Netns},
		},
		Routes: routes,
		DNS:    dns,
	}
	for _, x := range addrs {
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: types100.Int(1), Address: cniconf.IPNet(x)})
	}
	return res
}

// delegateError names the IPAM plugin in a delegated call's error, keeping
// its CNI error code.
func delegateError(plugin, cmd string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("IPAM plugin %s %s: %s", plugin, cmd, te.Msg), te.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %s %s: %v", plugin, cmd, err), "")
}

// withUndoError adds a failed undo step to the message of err.
func withUndoError(err error, what string, uerr error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("%s (and could not %s: %v)", te.Msg, what, uerr), te.Details)
	}
	return fmt.Errorf("%w (and could not %s: %v)", err, what, uerr)
}
