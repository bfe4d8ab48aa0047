package cni

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// hostVethName is upstream's host-side veth name: "cali" and the first 11
// characters of the container ID, or of hex(sha1("<namespace>.<pod>")) for
// a Kubernetes pod.
func hostVethName(containerID string, a cniconf.Args) string {
	id := containerID
	if a.K8sPodNamespace != "" && a.K8sPodName != "" {
		sum := sha1.Sum([]byte(a.K8sPodNamespace + "." + a.K8sPodName))
		id = hex.EncodeToString(sum[:])
	}
	return vethPrefix + id[:min(11, len(id))]
}

// vethPrefix starts every host veth name.
const vethPrefix = "cali"

// altVethName is the host veth name used when upstream's is held by
// another live workload (two container IDs sharing their first 11
// characters, as containerd's "<namespace>-<name>" IDs often do; or an
// earlier sandbox of the same pod still being torn down): "cali" and the
// first 11 hex digits of sha1(containerID). It is recorded on the
// endpoint, where Felix and calico-node read interface names from.
func altVethName(containerID string) string {
	sum := sha1.Sum([]byte(containerID))
	return vethPrefix + hex.EncodeToString(sum[:])[:11]
}

// hostIfCandidates are the host veth names the request may use, in order
// of preference: its current one (the endpoint's recorded name on a
// repeated ADD), upstream's, and the alternative.
func (r *request) hostIfCandidates() []string {
	out := []string{r.hostIf}
	for _, n := range []string{hostVethName(r.args.ContainerID, r.cargs), altVethName(r.args.ContainerID)} {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func kindInfo(kind string) api.KindInfo {
	k, _ := api.LookupKind(kind)
	return k
}

func wepKind() api.KindInfo { return kindInfo(api.KindWorkloadEndpoint) }

func clusterInfoKey() string {
	return kindInfo(api.KindClusterInformation).Key("", datastore.ClusterInfoName)
}

func profileKey(name string) string { return kindInfo(api.KindProfile).Key("", name) }

// state is what one consistent read tells a command.
type state struct {
	ciMissing     bool                  // no ClusterInformation: the datastore is not initialised
	ready         bool                  // ClusterInformation datastoreReady
	wep           *api.WorkloadEndpoint // nil if absent
	profileExists bool
	handle        *api.Handle // nil if absent (read for calico-ipam only)
}

// readState fetches the ClusterInformation, the endpoint, the network's
// profile and the IPAM handle in ONE round trip.
func (r *request) readState(ctx context.Context) (*state, error) {
	keys := []string{clusterInfoKey(), r.wepKey, profileKey(r.conf.Name)}
	if r.inproc {
		keys = append(keys, api.HandleKey(r.handle))
	}
	res, err := r.s.Store.Read(ctx, keys, nil)
	if err != nil {
		return nil, fmt.Errorf("read the datastore: %w", err)
	}
	st := &state{ready: true, ciMissing: res.Keys[0] == nil, profileExists: res.Keys[2] != nil}
	if item := res.Keys[0]; item != nil {
		ci, err := datastore.Decode(kindInfo(api.KindClusterInformation), item)
		if err != nil {
			return nil, err
		}
		st.ready = ci.(*api.ClusterInformation).Ready()
	}
	if item := res.Keys[1]; item != nil {
		w, err := datastore.Decode(wepKind(), item)
		if err != nil {
			return nil, err
		}
		st.wep = w.(*api.WorkloadEndpoint)
	}
	if r.inproc && res.Keys[3] != nil {
		st.handle = &api.Handle{}
		if err := json.Unmarshal(res.Keys[3].Value, st.handle); err != nil {
			return nil, fmt.Errorf("decode IPAM handle %s: %w", r.handle, err)
		}
	}
	return st, nil
}

// readyErr is the error for a datastore that cannot serve the command:
// not initialised (no ClusterInformation, code 999 as upstream's "error
// getting ClusterInformation") or marked not ready (code 11).
func (st *state) readyErr() error {
	switch {
	case st.ciMissing:
		return types.NewError(types.ErrInternal, "error getting ClusterInformation: resource does not exist: ClusterInformation(default): "+notInitialised, "")
	case !st.ready:
		return types.NewError(types.ErrTryAgainLater, cniipam.NotReady, "")
	}
	return nil
}

// newWEP is the endpoint ADD records for the pod.
func (r *request) newWEP(addrs []netip.Prefix, mac string) *api.WorkloadEndpoint {
	w := api.NewWorkloadEndpoint()
	w.Name, w.Namespace = r.wepName(), r.wepNS
	w.Spec = api.WorkloadEndpointSpec{
		Orchestrator:  r.ids.Orchestrator,
		Node:          r.node,
		ContainerID:   r.args.ContainerID,
		Pod:           r.ids.Pod,
		Endpoint:      r.args.IfName,
		Profiles:      []string{r.conf.Name},
		InterfaceName: r.hostIf,
		MAC:           mac,
	}
	for _, a := range addrs {
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, a.String())
	}
	return w
}

// wepAddrs parses an endpoint's ipNetworks.
func wepAddrs(w *api.WorkloadEndpoint) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(w.Spec.IPNetworks))
	for _, n := range w.Spec.IPNetworks {
		p, err := api.ParseAddrOrCIDR(n)
		if err != nil {
			return nil, fmt.Errorf("workload endpoint %s/%s: ipNetworks entry %q: %w", w.Namespace, w.Name, n, err)
		}
		out = append(out, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	return out, nil
}

// newProfile is upstream's profile for a network: ingress allowed from
// endpoints carrying the network's label (for Kubernetes pods: from
// anywhere), egress allowed, and the label applied to its endpoints.
func (r *request) newProfile() *api.Profile {
	p := api.NewProfile()
	p.Name = r.conf.Name
	in := api.Rule{Action: api.Allow}
	if r.ids.Orchestrator != api.OrchestratorK8s {
		in.Source.Selector = fmt.Sprintf("has(%s)", r.conf.Name)
	}
	p.Spec = api.ProfileSpec{
		Ingress:       []api.Rule{in},
		Egress:        []api.Rule{{Action: api.Allow}},
		LabelsToApply: map[string]string{r.conf.Name: ""},
	}
	return p
}

// ensureProfile creates the network's profile when the read showed it
// missing. An existing profile is never updated.
func (r *request) ensureProfile(ctx context.Context, c *datastore.Client, st *state) error {
	if st.profileExists {
		return nil
	}
	if _, err := c.Create(ctx, r.newProfile()); err != nil && !isExists(err) {
		return fmt.Errorf("create profile %s: %w", r.conf.Name, err)
	}
	st.profileExists = true
	return nil
}

func isExists(err error) bool { return errors.Is(err, kv.ErrExists) }

// routesFromHandle rebuilds calico-ipam's routes (each address with its
// block's mask) for addrs from the handle's blocks.
func routesFromHandle(h *api.Handle, addrs []netip.Prefix) []netip.Prefix {
	if h == nil {
		return nil
	}
	var blocks []netip.Prefix
	for k := range h.Block {
		if b, err := netip.ParsePrefix(k); err == nil {
			blocks = append(blocks, b.Masked())
		}
	}
	slices.SortFunc(blocks, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	var out []netip.Prefix
	for _, a := range addrs {
		for _, b := range blocks {
			if b.Contains(a.Addr()) {
				out = append(out, netip.PrefixFrom(a.Addr(), b.Bits()))
				break
			}
		}
	}
	return out
}
