package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/kv"
)

// del handles CNI DEL. It succeeds when the namespace, the interface, the
// addresses or the endpoint are already gone.
//
// The kernel teardown starts at once and runs concurrently with the
// datastore work: deleting a veth waits for an RCU grace period in the
// kernel (10-20 ms), while reading, deleting the endpoint and releasing
// the addresses take a few round trips. The addresses are released only
// once the host routes to them are gone (the first, quick step of the
// teardown), so a new pod given one of them can always add its route
// (calico#3940). DEL returns when both are done.
//
// When the datastore says it is not ready (or does not answer), DEL fails
// and leaves the records and addresses alone; the pod's interface is
// still taken down, since the runtime is removing the pod anyway.
func (p *plugin) del(args *skel.CmdArgs) error {
	ph := newPhases(p.start)
	r, err := p.prepare(args)
	if err != nil {
		return err
	}
	if err := r.s.Connect(); err != nil {
		return err
	}
	ph.mark("parse")

	// The host link is looked up by name only if the container end is
	// gone, and only once the read has shown that the name is still this
	// container's: a Kubernetes pod's veth name is shared by every sandbox
	// of the pod, and a newer one may own it now; two container IDs may
	// share their first 11 characters. Even then it is deleted only if its
	// routes are all to this endpoint's addresses.
	hostIf := make(chan hostLink, 1)
	routesGone := make(chan struct{})
	kernel := make(chan error, 1)
	var tRoutes, tTeardown time.Duration // written before the channels are, read after
	go func() {
		t0 := time.Now()
		err := link.RemoveWorkload(link.Removal{
			HostNetNS: p.hostNS, ContainerNetNS: args.Netns, ContainerIf: args.IfName,
			HostIfLater: func() (string, []netip.Prefix) {
				h := <-hostIf
				return h.name, h.addrs
			},
			RoutesGone: func() {
				tRoutes = time.Since(t0)
				close(routesGone)
			},
		})
		tTeardown = time.Since(t0)
		kernel <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	// One datastore budget for every round trip, as ADD's: an unreachable
	// datastore fails the DEL at the read, before anything is changed.
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget)
	st, err := r.readState(ctx)
	if err == nil {
		err = st.readyErr()
	}
	if err != nil {
		hostIf <- hostLink{}
		if kerr := <-kernel; kerr != nil {
			r.s.Log.Warn("DEL: remove the interface", "err", kerr)
		}
		return cniipam.CNIError(err)
	}
	ph.mark("read")
	ours := st.wep == nil || st.wep.Spec.ContainerID == args.ContainerID
	if ours {
		hostIf <- r.ownHostLink(ctx, st)
	} else {
		hostIf <- hostLink{}
		r.s.Log.Info("DEL: the endpoint belongs to a newer sandbox of this pod; leaving it", "endpoint", r.wepKey, "its container", st.wep.Spec.ContainerID)
	}

	var errs []error
	if st.wep != nil && ours {
		if err := r.deleteWEP(ctx, st.wep); err != nil {
			errs = append(errs, err)
		}
	}
	ph.mark("record")
	var kerr error
	kernelDone := false
	select {
	case <-routesGone:
	case kerr = <-kernel:
		kernelDone = true
	}
	select {
	case <-routesGone:
	default:
		// The teardown ended before the routes were gone: keep the
		// addresses until a later DEL has removed them.
		errs = append(errs, types.NewError(types.ErrInternal, fmt.Sprintf("remove interface %s of container %s: %v (its addresses stay allocated until DEL succeeds)", args.IfName, args.ContainerID, kerr), ""))
		return joinCNI(errs)
	}
	if err := r.releaseAll(ctx); err != nil {
		errs = append(errs, err)
	}
	ph.mark("ipam")
	if !kernelDone {
		kerr = <-kernel
	}
	ph.mark("wait")
	if kerr != nil {
		errs = append(errs, types.NewError(types.ErrInternal, fmt.Sprintf("remove interface %s of container %s: %v", args.IfName, args.ContainerID, kerr), ""))
	}
	if len(errs) == 0 {
		p.logDone(r, "DEL", ph, "endpoint", r.wepKey, "routes", tRoutes, "teardown", tTeardown)
	}
	return joinCNI(errs)
}

// ownHostLink is the host link name DEL may delete when the container end
// is gone, with the addresses that prove a link of that name is this
// container's: the endpoint's recorded interface and addresses or, with
// no endpoint (an ADD killed before recording it), upstream's name and
// the addresses its handle holds.
func (r *request) ownHostLink(ctx context.Context, st *state) hostLink {
	if w := st.wep; w != nil {
		addrs, _ := wepAddrs(w)
		if w.Spec.InterfaceName != "" {
			return hostLink{w.Spec.InterfaceName, addrs}
		}
		return hostLink{r.hostIf, addrs}
	}
	if !r.inproc || st.handle == nil {
		return hostLink{}
	}
	ips, err := r.s.Alloc.IPsByHandle(ctx, r.handle)
	if err != nil {
		return hostLink{}
	}
	h := hostLink{name: r.hostIf}
	for _, ip := range ips {
		h.addrs = append(h.addrs, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return h
}

// hostLink names a host link and the addresses it must route to be ours.
type hostLink struct {
	name  string
	addrs []netip.Prefix
}

// deleteWEP deletes the endpoint if it is still the one read (compare and
// swap on its revision); a concurrent change is re-read once.
func (r *request) deleteWEP(ctx context.Context, w *api.WorkloadEndpoint) error {
	rev := w.ResourceVersion
	for range 3 {
		var n int64
		if _, err := fmt.Sscan(rev, &n); err != nil {
			return fmt.Errorf("workload endpoint %s: bad resourceVersion %q", r.wepKey, rev)
		}
		err := r.s.Store.Delete(ctx, r.wepKey, n)
		switch {
		case err == nil, errors.Is(err, kv.ErrNotFound):
			return nil
		case !errors.Is(err, kv.ErrConflict):
			return cniipam.CNIError(fmt.Errorf("delete workload endpoint %s/%s: %w", r.wepNS, r.wepName(), err))
		}
		item, gerr := r.s.Store.Get(ctx, r.wepKey)
		if errors.Is(gerr, kv.ErrNotFound) {
			return nil
		}
		if gerr != nil {
			return cniipam.CNIError(gerr)
		}
		cur := api.NewWorkloadEndpoint()
		if err := json.Unmarshal(item.Value, cur); err != nil || cur.Spec.ContainerID != r.args.ContainerID {
			return nil // no longer this container's
		}
		rev = fmt.Sprint(item.Revision)
	}
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("delete workload endpoint %s/%s: it keeps changing", r.wepNS, r.wepName()), "")
}

// releaseAll releases the container's addresses: both Calico handles
// (<network>.<containerID> and the legacy one), or through the IPAM plugin.
func (r *request) releaseAll(ctx context.Context) error {
	if r.inproc {
		unlock, err := r.s.Lock()
		if err != nil {
			return err
		}
		defer unlock()
		return r.s.Release(ctx, r.handle, r.legacy)
	}
	if err := invoke.DelegateDel(ctx, r.conf.IPAM.Type, r.conf.Raw, nil); err != nil {
		return delegateError(r.conf.IPAM.Type, "DEL", err)
	}
	return nil
}

// joinCNI returns nil, the only error, or one CNI error carrying the
// first error's code and every message.
func joinCNI(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return cniipam.CNIError(errs[0])
	}
	first := cniipam.CNIError(errs[0]).(*types.Error)
	msg := first.Msg
	for _, e := range errs[1:] {
		msg += "; " + cniipam.CNIError(e).(*types.Error).Msg
	}
	return types.NewError(first.Code, msg, first.Details)
}
