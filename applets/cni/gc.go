package cni

import (
	"context"
	"errors"
	"fmt"
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
	for _, item := range items {
		res, err := datastore.Decode(wepKind(), item)
		if err != nil {
			continue
		}
		w := res.(*api.WorkloadEndpoint)
		if w.Spec.Node != node || !slices.Contains(w.Spec.Profiles, s.Conf.Name) ||
			valid[attachment{w.Spec.ContainerID, w.Spec.Endpoint}] {
			continue
		}
		s.Log.Info("GC: removing an attachment the runtime no longer has", "endpoint", w.Namespace+"/"+w.Name, "container", w.Spec.ContainerID, "interface", w.Spec.InterfaceName)
		if w.Spec.InterfaceName != "" {
			if err := link.RemoveWorkload(link.Removal{HostNetNS: p.hostNS, ContainerIf: w.Spec.Endpoint, HostIf: w.Spec.InterfaceName}); err != nil {
				errs = append(errs, fmt.Errorf("remove host interface %s: %w", w.Spec.InterfaceName, err))
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
		unlock := s.Lock()
		_, err := s.GCHandles(ctx, node, cids)
		unlock()
		if err != nil {
			errs = append(errs, err)
		}
	} else if err := invoke.DelegateGC(ctx, s.Conf.IPAM.Type, s.Conf.Raw, nil); err != nil && !olderSpec(err) {
		errs = append(errs, delegateError(s.Conf.IPAM.Type, "GC", err))
	}
	return joinCNI(errs)
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
	case err != nil:
		return unavailable("the datastore does not answer: %v", err)
	default:
		ci, err := datastore.Decode(kindInfo(api.KindClusterInformation), item)
		if err == nil && !ci.(*api.ClusterInformation).Ready() {
			return unavailable("%s", notReady)
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
