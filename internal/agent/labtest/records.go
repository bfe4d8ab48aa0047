package labtest

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// BlockSize is the block size the lab's records use.
const BlockSize = 26

func (l *Lab) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Pool creates (or replaces) an IPPool.
func (l *Lab) Pool(name, cidr string, vxlan api.VXLANMode, ipip api.IPIPMode, nat bool) *api.IPPool {
	l.T.Helper()
	p := api.NewIPPool()
	p.Name = name
	p.Spec.CIDR, p.Spec.VXLANMode, p.Spec.IPIPMode, p.Spec.NATOutgoing, p.Spec.BlockSize = cidr, vxlan, ipip, nat, BlockSize
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.Client.Apply(ctx, p); err != nil {
		l.T.Fatalf("apply pool %s: %v", name, err)
	}
	return p
}

// DeletePool removes an IPPool.
func (l *Lab) DeletePool(name string) {
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.Client.Delete(ctx, api.KindIPPool, "", name, ""); err != nil {
		l.T.Fatalf("delete pool %s: %v", name, err)
	}
}

// UpdateNode changes Node name with compare-and-swap (creating it if
// missing), as an operator or another component would.
func (l *Lab) UpdateNode(name string, mutate func(n *api.Node)) {
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	for range 20 {
		n, err := datastore.GetOf[*api.Node](ctx, l.Client, api.KindNode, "", name)
		if errors.Is(err, kv.ErrNotFound) {
			n = api.NewNode()
			n.Name = name
		} else if err != nil {
			l.T.Fatal(err)
		}
		mutate(n)
		if n.ResourceVersion == "" {
			_, err = l.Client.Create(ctx, n)
		} else {
			_, err = l.Client.Update(ctx, n)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) {
			l.T.Fatalf("write node %s: %v", name, err)
		}
	}
	l.T.Fatalf("write node %s: too many conflicts", name)
}

// PutNode writes a Node with an address and (if valid) a VXLAN tunnel
// address, for nodes that have no daemon in the lab.
func (l *Lab) PutNode(name string, ip netip.Prefix, vxlanTunnel netip.Addr) {
	l.T.Helper()
	l.UpdateNode(name, func(n *api.Node) {
		if n.Spec.BGP == nil {
			n.Spec.BGP = &api.NodeBGPSpec{}
		}
		n.Spec.BGP.IPv4Address = ip.String()
		if vxlanTunnel.IsValid() {
			n.Spec.IPv4VXLANTunnelAddr = vxlanTunnel.String()
		}
	})
}

// DeleteNode removes a Node resource.
func (l *Lab) DeleteNode(name string) {
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.Client.Delete(ctx, api.KindNode, "", name, ""); err != nil {
		l.T.Fatalf("delete node %s: %v", name, err)
	}
}

// newBlock is an empty block affine to host, as IPAM creates it.
func newBlock(host string, cidr netip.Prefix) api.Block {
	aff := api.HostAffinity(host)
	n := 1 << (32 - cidr.Bits())
	b := api.Block{CIDR: cidr.String(), Affinity: &aff, Allocations: make([]*int, n), Attributes: []api.AllocationAttribute{},
		SequenceNumber: uint64(time.Now().UnixNano()), SequenceNumberForAllocation: map[string]uint64{},
		AffinityClaimTime: time.Now().UTC().Format(time.RFC3339)}
	for i := range n {
		b.Unallocated = append(b.Unallocated, i)
	}
	return b
}

// ClaimWrites are the writes of one atomic Commit that claims an empty
// block for host (the block, created only if absent, and the affinity),
// for callers that want to time the write itself.
func ClaimWrites(host string, cidr netip.Prefix) []kv.Write {
	v, _ := json.Marshal(newBlock(host, cidr))
	return []kv.Write{
		{Key: api.BlockKey(cidr), Value: v, Rev: 0},
		{Key: api.AffinityKey(host, cidr), Value: []byte(`{"state":"confirmed","deleted":false}`), Rev: kv.Unconditional},
	}
}

// updateBlock applies mutate to the block for cidr with compare-and-swap,
// creating an empty block affine to host first if it does not exist.
func (l *Lab) updateBlock(ctx context.Context, host string, cidr netip.Prefix, mutate func(b *api.Block) error) error {
	key := api.BlockKey(cidr)
	for range 50 {
		item, err := l.Store.Get(ctx, key)
		var b api.Block
		var rev int64
		switch {
		case errors.Is(err, kv.ErrNotFound):
			b = newBlock(host, cidr)
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(item.Value, &b); err != nil {
				return err
			}
			rev = item.Revision
		}
		if err := mutate(&b); err != nil {
			return err
		}
		b.SequenceNumber++
		v, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if rev == 0 {
			writes := ClaimWrites(host, cidr)
			writes[0].Value = v
			_, err = l.Store.Commit(ctx, writes)
		} else {
			_, err = l.Store.Update(ctx, key, v, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) {
			return err
		}
	}
	return fmt.Errorf("update block %s: too many conflicts", cidr)
}

// ClaimBlock makes the block containing addr (a /26) affine to host, as
// IPAM does when a host needs its first address there.
func (l *Lab) ClaimBlock(host string, addr netip.Addr) netip.Prefix {
	l.T.Helper()
	cidr, _ := addr.Prefix(BlockSize)
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.updateBlock(ctx, host, cidr, func(*api.Block) error { return nil }); err != nil {
		l.T.Fatalf("claim block %s for %s: %v", cidr, host, err)
	}
	return cidr
}

// Assign records addr as allocated to handle with the given attributes in
// its block (claimed for host if new), and the handle, as IPAM does.
func (l *Lab) Assign(host string, addr netip.Addr, handle string, attrs map[string]string) {
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.assign(ctx, host, addr, handle, attrs); err != nil {
		l.T.Fatal(err)
	}
}

func (l *Lab) assign(ctx context.Context, host string, addr netip.Addr, handle string, attrs map[string]string) error {
	cidr, _ := addr.Prefix(BlockSize)
	ord := int(addr.As4()[3]) - int(cidr.Addr().As4()[3])
	err := l.updateBlock(ctx, host, cidr, func(b *api.Block) error {
		if b.Allocations[ord] != nil {
			return fmt.Errorf("address %s is already allocated", addr)
		}
		idx := len(b.Attributes)
		h := handle
		b.Attributes = append(b.Attributes, api.AllocationAttribute{HandleID: &h, ActiveOwnerAttrs: attrs})
		b.Allocations[ord] = &idx
		for i, u := range b.Unallocated {
			if u == ord {
				b.Unallocated = append(b.Unallocated[:i], b.Unallocated[i+1:]...)
				break
			}
		}
		b.SequenceNumberForAllocation[fmt.Sprint(ord)] = b.SequenceNumber
		return nil
	})
	if err != nil {
		return fmt.Errorf("assign %s: %w", addr, err)
	}
	hv, _ := json.Marshal(api.Handle{Block: map[string]int{cidr.String(): 1}})
	if _, err := l.Store.Put(ctx, api.HandleKey(handle), hv); err != nil {
		return fmt.Errorf("write handle %s: %w", handle, err)
	}
	return nil
}

// Release frees addr in its block and deletes the handle.
func (l *Lab) Release(host string, addr netip.Addr, handle string) {
	l.T.Helper()
	cidr, _ := addr.Prefix(BlockSize)
	ord := int(addr.As4()[3]) - int(cidr.Addr().As4()[3])
	ctx, cancel := l.ctx()
	defer cancel()
	err := l.updateBlock(ctx, host, cidr, func(b *api.Block) error {
		b.Allocations[ord] = nil
		b.Unallocated = append(b.Unallocated, ord)
		delete(b.SequenceNumberForAllocation, fmt.Sprint(ord))
		return nil
	})
	if err != nil {
		l.T.Fatal(err)
	}
	_ = l.Store.Delete(ctx, api.HandleKey(handle), 0)
}

// DeleteBlock removes a block and its affinity.
func (l *Lab) DeleteBlock(host string, cidr netip.Prefix) {
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.Store.Commit(ctx, []kv.Write{
		{Key: api.BlockKey(cidr), Rev: kv.Unconditional, Delete: true},
		{Key: api.AffinityKey(host, cidr), Rev: kv.Unconditional, Delete: true},
	}); err != nil {
		l.T.Fatal(err)
	}
}

// TunnelAddress allocates addr as node's VXLAN tunnel address the way
// upstream's calico-node does (handle vxlan-tunnel-addr-<node>, attribute
// type vxlanTunnelAddress) and records it on the Node.
func (l *Lab) TunnelAddress(node string, addr netip.Addr) {
	l.T.Helper()
	l.Assign(node, addr, "vxlan-tunnel-addr-"+node, map[string]string{api.AttrNode: node, api.AttrType: api.TypeVXLANTunnelAddress})
	l.UpdateNode(node, func(n *api.Node) { n.Spec.IPv4VXLANTunnelAddr = addr.String() })
}

// Pod is a workload plumbed into a node.
type Pod struct {
	Node      *Node
	Name      string
	NS        string
	IP        netip.Addr
	HostIf    string
	Handle    string
	WEPName   string
	Workload  link.Workload
	Namespace string
}

// HostIfName is the host-side veth name for a container ID: "cali" plus 11
// hex characters of a hash.
func HostIfName(cid string) string {
	sum := sha1.Sum([]byte(cid))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

// AddPod creates pod name on node n with address addr, as a CNI ADD does:
// the IPAM allocation (claiming the /26 for n if it is new), the veth pair
// and routes (link.SetupWorkload), then the WorkloadEndpoint. The pod
// namespace is removed at test end.
func (n *Node) AddPod(name string, addr netip.Addr) *Pod {
	n.Lab.T.Helper()
	return n.AddPodHook(name, addr, nil)
}

// AddPodHook is AddPod with beforeWEP called after the plumbing and before
// the WorkloadEndpoint is written (to disturb the plumbing in tests).
func (n *Node) AddPodHook(name string, addr netip.Addr, beforeWEP func(*Pod)) *Pod {
	l := n.Lab
	l.T.Helper()
	p, err := n.addPod(name, addr, l.newNS(l.T), beforeWEP)
	if err != nil {
		l.T.Fatal(err)
	}
	return p
}

func (n *Node) addPod(name string, addr netip.Addr, podNS string, beforeWEP func(*Pod)) (*Pod, error) {
	l := n.Lab
	ctx, cancel := l.ctx()
	defer cancel()
	cid := n.Name + "-" + name
	wep, err := api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: n.Name, Orchestrator: api.OrchestratorCNI, ContainerID: cid, Endpoint: "eth0"})
	if err != nil {
		return nil, err
	}
	p := &Pod{Node: n, Name: name, NS: podNS, IP: addr, HostIf: HostIfName(cid), Handle: "labnet." + cid, WEPName: wep, Namespace: "default"}
	if err := l.assign(ctx, n.Name, addr, p.Handle, map[string]string{api.AttrNode: n.Name,
		api.AttrTimestamp: time.Now().UTC().Format("2006-01-02 15:04:05.000000000 -0700 MST")}); err != nil {
		return nil, err
	}
	mtu := 1450
	if m, err := agent.ReadMTUFile(n.MTUFile()); err == nil {
		mtu = m
	}
	p.Workload = link.Workload{HostNetNS: n.NS, ContainerNetNS: podNS, ContainerIf: "eth0", HostIf: p.HostIf, MTU: mtu,
		Addrs: []netip.Prefix{netip.PrefixFrom(addr, 32)}}
	res, err := link.SetupWorkload(p.Workload)
	if err != nil {
		return nil, fmt.Errorf("plumb pod %s: %w", name, err)
	}
	if beforeWEP != nil {
		beforeWEP(p)
	}
	if err := l.EnsureNetworkProfile(ctx, "labnet"); err != nil {
		return nil, err
	}
	w := api.NewWorkloadEndpoint()
	w.Name, w.Namespace = p.WEPName, p.Namespace
	w.Spec = api.WorkloadEndpointSpec{Orchestrator: "cni", Node: n.Name, ContainerID: cid, Endpoint: "eth0",
		IPNetworks: []string{netip.PrefixFrom(addr, 32).String()}, Profiles: []string{"labnet"},
		InterfaceName: p.HostIf, MAC: res.ContainerMAC.String()}
	if _, err := l.Client.Create(ctx, w); err != nil {
		return nil, fmt.Errorf("create workload endpoint %s: %w", p.WEPName, err)
	}
	n.pods++
	return p, nil
}

// Delete undoes AddPod: the endpoint, the plumbing and the allocation.
func (p *Pod) Delete() {
	l := p.Node.Lab
	l.T.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.Client.Delete(ctx, api.KindWorkloadEndpoint, p.Namespace, p.WEPName, ""); err != nil {
		l.T.Fatal(err)
	}
	if err := link.TeardownWorkload(p.NS, "eth0"); err != nil {
		l.T.Fatal(err)
	}
	l.Release(p.Node.Name, p.IP, p.Handle)
}
