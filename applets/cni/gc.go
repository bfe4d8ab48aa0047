package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// statusTimeout bounds a STATUS: the runtime asks it often.
const statusTimeout = 10 * time.Second

// gc handles CNI GC (spec 1.1): for this network on this node, every
// attachment not in cni.dev/valid-attachments loses its host-side
// interface and routes, its workload endpoint and then its addresses.
// Without that list it does nothing rather than treat everything as stale.
func (p *plugin) gc(args *skel.CmdArgs) error {
	s, err := cniipam.Open(p.env, component, args.StdinData)
	if err != nil {
		return err
	}
	p.s = s
	node, err := s.NodeName()
	if err != nil {
		return err
	}
	if err := checkIPAMType(s.Conf, args.Path); err != nil {
		return err
	}
	if !s.Conf.HasValidAttachments {
		s.Log.Warn("GC without cni.dev/valid-attachments: nothing collected")
		return nil
	}
	type attachment struct{ cid, ifname string }
	valid := map[attachment]bool{}
	for _, at := range s.Conf.ValidAttachments {
		valid[attachment{at.ContainerID, at.IfName}] = true
	}
	if err := s.Connect(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()

	items, _, err := s.Store.List(ctx, wepKind().ListPrefix(""))
	if err != nil {
		return cniipam.CNIError(fmt.Errorf("list workload endpoints: %w", err))
	}
	var errs []error
	// inUse holds the host interfaces of the endpoints that stay on this
	// node: GC never removes those links, whatever routes they carry.
	inUse := map[string]bool{}
	for _, item := range items {
		res, err := datastore.Decode(wepKind(), item)
		if err != nil {
			continue
		}
		w := res.(*api.WorkloadEndpoint)
		if w.Spec.Node != node {
			continue
		}
		if !slices.Contains(w.Spec.Profiles, s.Conf.Name) || valid[attachment{w.Spec.ContainerID, w.Spec.Endpoint}] {
			inUse[w.Spec.InterfaceName] = true
			continue
		}
		s.Log.Info("GC: removing an attachment the runtime no longer has", "endpoint", w.Namespace+"/"+w.Name, "container", w.Spec.ContainerID, "interface", w.Spec.InterfaceName)
		if w.Spec.InterfaceName != "" {
			addrs, _ := wepAddrs(w)
			if err := link.RemoveWorkload(link.Removal{HostNetNS: p.hostNS, ContainerIf: w.Spec.Endpoint, HostIf: w.Spec.InterfaceName, HostIfAddrs: addrs}); err != nil {
				errs = append(errs, fmt.Errorf("remove host interface %s: %w", w.Spec.InterfaceName, err))
				inUse[w.Spec.InterfaceName] = true
				continue // keep the record (and its addresses) for the next GC
			}
		}
		if err := s.Store.Delete(ctx, item.Key, item.Revision); err != nil && !errors.Is(err, kv.ErrNotFound) && !errors.Is(err, kv.ErrConflict) {
			errs = append(errs, fmt.Errorf("delete workload endpoint %s/%s: %w", w.Namespace, w.Name, err))
		}
	}

	if s.Conf.IPAM.Type == cniipam.PluginType {
		cids := map[string]bool{}
		for at := range valid {
			cids[at.cid] = true
		}
		if err := p.gcAddresses(ctx, node, cids, inUse); err != nil {
			errs = append(errs, err)
		}
		// The IP cooldown's garbage collection: addresses whose cooldown
		// has passed go back to their blocks' free lists (each block a CAS).
		if n, err := s.Alloc.ReclaimCooled(ctx); err != nil {
			errs = append(errs, cniipam.CNIError(err))
		} else if n > 0 {
			s.Log.Info("GC: cooled-down addresses returned to the free lists", "addresses", n)
		}
	} else if err := invoke.DelegateGC(ctx, s.Conf.IPAM.Type, s.Conf.Raw, nil); err != nil && !olderSpec(err) {
		errs = append(errs, delegateError(s.Conf.IPAM.Type, "GC", err))
	}
	return joinCNI(errs)
}

// gcAddresses releases this network's allocations on node whose container
// is not in valid, each only once no host route to its addresses is left
// (as DEL does, calico#3940). An ADD killed after allocating and before
// recording its endpoint leaves its host veth and routes behind: such a
// veth is removed first when it is provably the dead container's (see
// link.RemoveOrphanLinks); links in inUse never are. An allocation whose
// address is still routed elsewhere is kept, and the error names the link.
func (p *plugin) gcAddresses(ctx context.Context, node string, valid, inUse map[string]bool) error {
	s := p.s
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	stale, err := s.StaleHandles(ctx, node, valid)
	if err != nil {
		return err
	}
	var errs []error
	var release []string
	for _, h := range stale {
		ips, err := s.Alloc.IPsByHandle(ctx, h)
		if err != nil {
			errs = append(errs, fmt.Errorf("GC: read IPAM handle %s: %v", h, err))
			continue
		}
		addrs := make([]netip.Prefix, len(ips))
		for i, ip := range ips {
			addrs[i] = netip.PrefixFrom(ip, ip.BitLen())
		}
		o := link.Orphan{HostNetNS: p.hostNS, Addrs: addrs, Prefix: vethPrefix, InUse: func(n string) bool { return inUse[n] }}
		if err := link.RemoveOrphanLinks(o); err != nil {
			errs = append(errs, fmt.Errorf("GC keeps IPAM handle %s: %w", h, err))
			continue
		}
		release = append(release, h)
	}
	if len(release) > 0 {
		s.Log.Info("GC releasing allocations of containers that are gone", "handles", release)
		if err := s.Alloc.ReleaseByHandles(ctx, release...); err != nil {
			errs = append(errs, fmt.Errorf("GC: release %v: %v", release, err))
		}
	}
	return errors.Join(errs...)
}

// status handles CNI STATUS (spec 1.1): the plugin can serve ADD when the
// datastore answers and is ready, and IPAM has a usable pool for this node
// (or the IPAM plugin says it is ready). Otherwise code 50.
func (p *plugin) status(args *skel.CmdArgs) error {
	s, err := cniipam.Open(p.env, component, args.StdinData)
	if err != nil {
		return err
	}
	p.s = s
	unavailable := func(format string, a ...any) error {
		return types.NewError(cniipam.ErrPluginNotAvailable, fmt.Sprintf(format, a...), "")
	}
	node, err := s.NodeName()
	if err != nil {
		return unavailable("%s", err.(*types.Error).Msg)
	}
	if err := checkIPAMType(s.Conf, args.Path); err != nil {
		return unavailable("%s", err.(*types.Error).Msg)
	}
	if err := s.Connect(); err != nil {
		return unavailable("%s", err.(*types.Error).Msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	item, err := s.Store.Get(ctx, clusterInfoKey())
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return unavailable("no ClusterInformation: %s", notInitialised)
	case err != nil:
		return unavailable("the datastore does not answer: %v", err)
	default:
		ci, err := datastore.Decode(kindInfo(api.KindClusterInformation), item)
		if err == nil && !ci.(*api.ClusterInformation).Ready() {
			return unavailable("%s", cniipam.NotReady)
		}
	}
	if s.Conf.IPAM.Type == cniipam.PluginType {
		return s.Status(ctx, node)
	}
	if err := invoke.DelegateStatus(ctx, s.Conf.IPAM.Type, s.Conf.Raw, nil); err != nil && !olderSpec(err) {
		return unavailable("%s", delegateError(s.Conf.IPAM.Type, "STATUS", err).(*types.Error).Msg)
	}
	return nil
}

// olderSpec reports whether a delegated plugin refused a command because
// it implements an older CNI spec (no GC or STATUS there): nothing to do.
func olderSpec(err error) bool {
	var te *types.Error
	return errors.As(err, &te) && te.Code == types.ErrIncompatibleCNIVersion
}
