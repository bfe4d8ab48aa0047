package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
)

// Report is the result of a consistency check, in the JSON format of
// upstream's `calicoctl ipam check -o` (so `ipam release --from-report`
// accepts reports of either), plus our extra findings under "problems".
type Report struct {
	Version             string                   `json:"version"`
	ClusterGUID         string                   `json:"clusterGUID"`
	DatastoreLocked     bool                     `json:"datastoreLocked"`
	ClusterInfoRevision string                   `json:"clusterInformationRevision"`
	ClusterType         string                   `json:"clusterType"`
	Allocations         map[string][]*Allocation `json:"allocations"`
	LeakedHandles       []HandleInfo             `json:"leakedHandles,omitempty"`
	Problems            *Problems                `json:"problems,omitempty"`

	// Summary is what the check counted, for the printed report.
	Summary Summary `json:"-"`
}

// Allocation is one allocated address, cross-referenced with its owners.
type Allocation struct {
	IP                string  `json:"ip"`
	Handle            string  `json:"handle,omitempty"`
	SequenceNumber    *uint64 `json:"sequenceNumber,omitempty"`
	Pod               string  `json:"pod,omitempty"`
	Namespace         string  `json:"namespace,omitempty"`
	Node              string  `json:"node,omitempty"`
	Type              string  `json:"type,omitempty"`
	CreationTimestamp string  `json:"creationTimestamp,omitempty"`
	// InUse is true when a workload endpoint or a node uses the address;
	// false means it leaked and `ipam release --from-report` may free it.
	InUse    bool     `json:"inUse"`
	Borrowed bool     `json:"borrowed,omitempty"`
	Owners   []string `json:"owners"`

	// Block and Attrs are for the printed report.
	Block string            `json:"-"`
	Attrs string            `json:"-"`
	attrs map[string]string `json:"-"`
}

// HandleInfo identifies a handle and the revision it was seen at (upstream
// writes these field names without JSON tags).
type HandleInfo struct {
	ID       string
	UID      *string
	Revision string
}

// Problems are the inconsistencies found. Each entry is one line a person
// can act on.
type Problems struct {
	AllocatedNotInUse     []string `json:"allocatedNotInUse,omitempty"`
	InUseNotAllocated     []string `json:"inUseNotAllocated,omitempty"`
	InUseOutsidePools     []string `json:"inUseOutsidePools,omitempty"`
	AllocatedOutsidePools []string `json:"allocatedOutsidePools,omitempty"`
	MultipleOwners        []string `json:"multipleOwners,omitempty"`
	DuplicateAllocations  []string `json:"duplicateAllocations,omitempty"`
	MissingHandles        []string `json:"missingHandles,omitempty"`
	HandleCounts          []string `json:"handleCounts,omitempty"`
	Affinities            []string `json:"affinities,omitempty"`
	BlocksOfMissingNodes  []string `json:"blocksOfMissingNodes,omitempty"`
	InvalidBlocks         []string `json:"invalidBlocks,omitempty"`
}

// Summary counts what the check looked at.
type Summary struct {
	Blocks          []string // "<cidr> affinity=<affinity>"
	NumAllocations  int
	ActivePools     []string
	NodeIPs         int
	WorkloadIPs     int
	InUseIPs        int
	Handles         int
	GoodHandles     int
	NodeAllocations map[string]int
	// Cooling counts released addresses still marked releasedAt (IP
	// cooldown): neither allocated nor leaked.
	Cooling int
	// PendingAffinities are claims that did not finish (harmless: the next
	// allocation on that host completes or removes them).
	PendingAffinities []string
}

// Total is the number of problems: upstream's (leaks, in-use addresses
// without allocation or outside the pools, leaked handles) and ours.
func (r *Report) Total() int {
	p := r.Problems
	n := len(r.LeakedHandles)
	if p == nil {
		return n
	}
	return n + len(p.AllocatedNotInUse) + len(p.InUseNotAllocated) + len(p.InUseOutsidePools) +
		len(p.AllocatedOutsidePools) + len(p.MultipleOwners) + len(p.DuplicateAllocations) + len(p.MissingHandles) +
		len(p.HandleCounts) + len(p.Affinities) + len(p.BlocksOfMissingNodes) + len(p.InvalidBlocks)
}

// CheckOptions configure Check.
type CheckOptions struct {
	// Version is written into the report (release refuses reports of
	// another version unless forced).
	Version string
}

// Check reads blocks, affinities, handles, pools, nodes, workload
// endpoints and the ClusterInformation in one consistent read, and reports
// every inconsistency: addresses allocated but used by nobody (leaks),
// addresses used but not allocated, addresses outside the pools, addresses
// with several owners, handles with no addresses, handles referenced but
// missing, handle counts that disagree with the blocks, affinities that
// disagree with the blocks, and blocks affine to nodes that do not exist.
func (a *Allocator) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	ci := kindInfo(api.KindClusterInformation)
	wep := kindInfo(api.KindWorkloadEndpoint)
	res, err := a.store.Read(ctx, []string{ci.Key("", "default")},
		[]string{api.BlockPrefix(0), poolsPrefix(), nodesPrefix(), wep.ListPrefix(""), api.IPAMHandlePrefix, api.IPAMHostPrefix})
	if err != nil {
		return nil, fmt.Errorf("read IPAM data: %w", err)
	}
	r := &Report{Version: opts.Version, Allocations: map[string][]*Allocation{}, Problems: &Problems{}}
	r.Summary.NodeAllocations = map[string]int{}
	p := r.Problems
	if item := res.Keys[0]; item != nil {
		c := api.NewClusterInformation()
		if err := json.Unmarshal(item.Value, c); err == nil {
			r.ClusterGUID, r.ClusterType = c.Spec.ClusterGUID, c.Spec.ClusterType
			r.DatastoreLocked = !c.Ready()
		}
		r.ClusterInfoRevision = strconv.FormatInt(item.Revision, 10)
	}

	// Blocks: every allocation, and per-handle counts.
	counts := map[string]map[string]int{} // handle -> block -> count
	type blockAff struct {
		cidr netip.Prefix
		host string
	}
	var affineBlocks []blockAff
	blockSet := map[netip.Prefix]*api.Block{}
	for _, item := range res.Prefixes[0] {
		b, cidr, err := decodeBlock(item.Key, item.Value)
		if err != nil {
			p.InvalidBlocks = append(p.InvalidBlocks, err.Error())
			continue
		}
		blockSet[cidr] = b
		aff := "<none>"
		owner := ""
		if b.Affinity != nil {
			aff = *b.Affinity
			if h, ok := b.AffineHost(); ok {
				owner = h
				affineBlocks = append(affineBlocks, blockAff{cidr, h})
			}
		}
		r.Summary.Blocks = append(r.Summary.Blocks, fmt.Sprintf("%s affinity=%s", cidr, aff))
		r.Summary.Cooling += coolingCount(b)
		for o, idx := range b.Allocations {
			if idx == nil || b.Attributes[*idx].Cooling() {
				continue
			}
			r.Summary.NumAllocations++
			ip := ordinalAddr(cidr, o).String()
			at := b.Attributes[*idx]
			seq := seqForOrdinal(b, o)
			al := &Allocation{IP: ip, SequenceNumber: &seq, Node: owner, Block: cidr.String(), attrs: at.ActiveOwnerAttrs, Attrs: formatAttrs(at)}
			if h := attrHandle(at); h != "" {
				al.Handle = h
				if counts[h] == nil {
					counts[h] = map[string]int{}
				}
				counts[h][cidr.String()]++
			}
			if n := at.ActiveOwnerAttrs[api.AttrNode]; n != "" {
				al.Node = n
			}
			al.Pod = at.ActiveOwnerAttrs[api.AttrPod]
			al.Namespace = at.ActiveOwnerAttrs[api.AttrNamespace]
			al.Type = at.ActiveOwnerAttrs[api.AttrType]
			al.CreationTimestamp = at.ActiveOwnerAttrs[api.AttrTimestamp]
			al.Borrowed = al.Node != owner
			if strings.EqualFold(al.Handle, WindowsReservedHandle) {
				al.InUse, al.Owners = true, []string{"Reserved for Windows"}
			}
			r.Allocations[ip] = append(r.Allocations[ip], al)
			r.Summary.NodeAllocations[al.Node]++
		}
	}
	for ip, als := range r.Allocations {
		if len(als) > 1 {
			blocks := make([]string, len(als))
			for i, al := range als {
				blocks[i] = al.Block
			}
			p.DuplicateAllocations = append(p.DuplicateAllocations, fmt.Sprintf("%s is allocated in %d overlapping blocks: %s", ip, len(als), strings.Join(blocks, ", ")))
		}
	}

	// Pools.
	pools := decodePools(res.Prefixes[1])
	var active []pool
	for _, pl := range pools {
		if pl.enabled() {
			active = append(active, pl)
			r.Summary.ActivePools = append(r.Summary.ActivePools, pl.cidr.String())
		}
	}

	// Owners: node tunnel addresses and workload endpoint addresses.
	inUse := map[string][]string{}
	record := func(ip, owner string) {
		inUse[ip] = append(inUse[ip], owner)
		for _, al := range r.Allocations[ip] {
			al.InUse = true
			al.Owners = append(al.Owners, owner)
		}
	}
	nodes := map[string]bool{}
	for _, item := range res.Prefixes[2] {
		n := api.NewNode()
		if err := json.Unmarshal(item.Value, n); err != nil {
			continue
		}
		nodes[n.Name] = true
		for _, s := range nodeTunnelAddrs(n) {
			if pfx, err := api.ParseAddrOrCIDR(s); err == nil {
				record(pfx.Addr().String(), fmt.Sprintf("Node(%s)", n.Name))
				r.Summary.NodeIPs++
			}
		}
	}
	for _, item := range res.Prefixes[3] {
		w := api.NewWorkloadEndpoint()
		if err := json.Unmarshal(item.Value, w); err != nil {
			continue
		}
		for _, s := range w.Spec.IPNetworks {
			if pfx, err := api.ParseAddrOrCIDR(s); err == nil {
				record(pfx.Addr().String(), fmt.Sprintf("Workload(%s/%s)", w.Namespace, w.Name))
				r.Summary.WorkloadIPs++
			}
		}
	}
	r.Summary.InUseIPs = len(inUse)

	for _, ip := range sortedKeys(r.Allocations) {
		if _, ok := inUse[ip]; !ok {
			for _, al := range r.Allocations[ip] {
				if !al.InUse {
					p.AllocatedNotInUse = append(p.AllocatedNotInUse, fmt.Sprintf("%s leaked; attrs %s", ip, al.Attrs))
				}
			}
		}
		addr, _ := netip.ParseAddr(ip)
		if _, ok := poolFor(pools, addr); !ok {
			p.AllocatedOutsidePools = append(p.AllocatedOutsidePools, fmt.Sprintf("%s is allocated in block %s, which is in no IP pool", ip, r.Allocations[ip][0].Block))
		}
	}
	for _, ip := range sortedKeys(inUse) {
		owners := inUse[ip]
		if len(owners) > 1 {
			p.MultipleOwners = append(p.MultipleOwners, fmt.Sprintf("%s has multiple owners: %s", ip, strings.Join(owners, ", ")))
		}
		if _, ok := r.Allocations[ip]; ok {
			continue
		}
		addr, _ := netip.ParseAddr(ip)
		if _, ok := poolFor(active, addr); !ok {
			for _, o := range owners {
				p.InUseOutsidePools = append(p.InUseOutsidePools, fmt.Sprintf("%s in use by %s is not in any active IP pool", ip, o))
			}
			continue
		}
		for _, o := range owners {
			p.InUseNotAllocated = append(p.InUseNotAllocated, fmt.Sprintf("%s in use by %s and in active IPAM pool but has no IPAM allocation", ip, o))
		}
	}

	// Handles.
	handles := map[string]*api.Handle{}
	for _, item := range res.Prefixes[4] {
		id, err := api.ParseHandleKey(item.Key)
		if err != nil {
			continue
		}
		var h api.Handle
		_ = json.Unmarshal(item.Value, &h)
		handles[id] = &h
		r.Summary.Handles++
		if _, ok := counts[sanitizeHandle(id)]; ok {
			r.Summary.GoodHandles++
			continue
		}
		r.LeakedHandles = append(r.LeakedHandles, HandleInfo{ID: id, Revision: strconv.FormatInt(item.Revision, 10)})
	}
	sort.Slice(r.LeakedHandles, func(i, j int) bool { return r.LeakedHandles[i].ID < r.LeakedHandles[j].ID })
	for _, id := range sortedKeys(counts) {
		h, ok := handles[id]
		if !ok {
			p.MissingHandles = append(p.MissingHandles, fmt.Sprintf("%s is in use in a block but doesn't exist", id))
			continue
		}
		for _, blk := range sortedKeys(counts[id]) {
			if got, want := h.Block[blk], counts[id][blk]; got != want {
				p.HandleCounts = append(p.HandleCounts, fmt.Sprintf("handle %s counts %d address(es) in block %s but the block has %d", id, got, blk, want))
			}
		}
		for _, blk := range sortedKeys(h.Block) {
			if _, ok := counts[id][blk]; !ok && h.Block[blk] != 0 {
				p.HandleCounts = append(p.HandleCounts, fmt.Sprintf("handle %s counts %d address(es) in block %s but the block has none", id, h.Block[blk], blk))
			}
		}
	}

	// Affinities against blocks, both ways.
	affs := map[string]api.BlockAffinity{}
	for _, af := range decodeAffinities(res.Prefixes[5]) {
		affs[af.key] = af.aff
		b := blockSet[af.cidr]
		switch {
		case b == nil && af.aff.Confirmed():
			p.Affinities = append(p.Affinities, fmt.Sprintf("host %s has a confirmed affinity to block %s, which does not exist", af.host, af.cidr))
		case b == nil:
			r.Summary.PendingAffinities = append(r.Summary.PendingAffinities, fmt.Sprintf("host %s has a %s affinity to block %s, which does not exist", af.host, af.aff.State, af.cidr))
		case !isAffineTo(b, af.host):
			owner := "no host"
			if b.Affinity != nil {
				owner = *b.Affinity
			}
			if !af.aff.Confirmed() {
				// A claim killed (or beaten) before it deleted its pending
				// key, or a release killed before its last step: the
				// host's next allocation deletes the key.
				r.Summary.PendingAffinities = append(r.Summary.PendingAffinities, fmt.Sprintf("host %s has a %s affinity to block %s, which belongs to %s", af.host, af.aff.State, af.cidr, owner))
				continue
			}
			p.Affinities = append(p.Affinities, fmt.Sprintf("host %s has a confirmed affinity to block %s, which belongs to %s", af.host, af.cidr, owner))
		}
	}
	for _, ba := range affineBlocks {
		aff, ok := affs[api.AffinityKey(ba.host, ba.cidr)]
		switch {
		case !ok:
			p.Affinities = append(p.Affinities, fmt.Sprintf("block %s is affine to host %s, which has no affinity key for it", ba.cidr, ba.host))
		case !aff.Confirmed():
			p.Affinities = append(p.Affinities, fmt.Sprintf("block %s is affine to host %s, whose affinity is still %q", ba.cidr, ba.host, aff.State))
		}
		if !nodes[ba.host] {
			p.BlocksOfMissingNodes = append(p.BlocksOfMissingNodes, fmt.Sprintf("block %s is affine to node %s, which does not exist", ba.cidr, ba.host))
		}
	}
	if r.Total() == len(r.LeakedHandles) {
		r.Problems = nil
	}
	return r, nil
}

// nodeTunnelAddrs are the addresses a Node resource says it uses.
func nodeTunnelAddrs(n *api.Node) []string {
	var out []string
	if n.Spec.IPv4VXLANTunnelAddr != "" {
		out = append(out, n.Spec.IPv4VXLANTunnelAddr)
	}
	if n.Spec.IPv6VXLANTunnelAddr != "" {
		out = append(out, n.Spec.IPv6VXLANTunnelAddr)
	}
	if w := n.Spec.Wireguard; w != nil {
		if w.InterfaceIPv4Address != "" {
			out = append(out, w.InterfaceIPv4Address)
		}
		if w.InterfaceIPv6Address != "" {
			out = append(out, w.InterfaceIPv6Address)
		}
	}
	if b := n.Spec.BGP; b != nil && b.IPv4IPIPTunnelAddr != "" {
		out = append(out, b.IPv4IPIPTunnelAddr)
	}
	return out
}

// formatAttrs renders an attribute as upstream's check does.
func formatAttrs(at api.AllocationAttribute) string {
	primary := "<none>"
	if at.HandleID != nil {
		primary = *at.HandleID
	}
	keys := sortedKeys(at.ActiveOwnerAttrs)
	kvs := make([]string, len(keys))
	for i, k := range keys {
		kvs[i] = k + "=" + at.ActiveOwnerAttrs[k]
	}
	return fmt.Sprintf("Main:%s Extra:%s", primary, strings.Join(kvs, ","))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ReleaseFromReport releases what a report found leaked: every allocation
// not in use (with its handle and sequence number, so an address
// re-allocated since the report is left alone) and every leaked handle
// whose revision has not changed. It returns how many addresses were
// released, how many were already free, how many were skipped as changed,
// and how many handles were deleted.
func (a *Allocator) ReleaseFromReport(ctx context.Context, r *Report) (released, alreadyFree, skipped, handles int, err error) {
	var opts []ReleaseOptions
	for _, ip := range sortedKeys(r.Allocations) {
		for _, al := range r.Allocations[ip] {
			if al.InUse {
				continue
			}
			addr, perr := netip.ParseAddr(al.IP)
			if perr != nil {
				return 0, 0, 0, 0, fmt.Errorf("report: bad address %q", al.IP)
			}
			opts = append(opts, ReleaseOptions{Address: addr, HandleID: al.Handle, SequenceNumber: al.SequenceNumber})
		}
	}
	if len(opts) > 0 {
		notAllocated, rerr := a.ReleaseIPs(ctx, opts)
		var mm *MismatchError
		if rerr != nil && !asMismatch(rerr, &mm) {
			return 0, 0, 0, 0, rerr
		}
		if mm != nil {
			skipped = len(mm.Addresses)
		}
		alreadyFree = len(notAllocated)
		released = len(opts) - alreadyFree - skipped
	}
	for _, h := range r.LeakedHandles {
		rev, perr := strconv.ParseInt(h.Revision, 10, 64)
		if perr != nil || rev <= 0 {
			continue
		}
		// Compare-and-delete on the reported revision: a handle that got
		// an allocation since the report has a new revision and stays.
		if derr := a.store.Delete(ctx, api.HandleKey(h.ID), rev); derr == nil {
			handles++
		} else if !isCASFailure(derr) {
			return released, alreadyFree, skipped, handles, fmt.Errorf("delete handle %s: %w", h.ID, derr)
		}
	}
	return released, alreadyFree, skipped, handles, nil
}

func asMismatch(err error, mm **MismatchError) bool {
	type unwrapper interface{ Unwrap() []error }
	if m, ok := err.(*MismatchError); ok {
		*mm = m
		return true
	}
	if u, ok := err.(unwrapper); ok {
		for _, e := range u.Unwrap() {
			if m, ok := e.(*MismatchError); ok {
				*mm = m
			} else {
				return false
			}
		}
		return *mm != nil
	}
	return false
}
