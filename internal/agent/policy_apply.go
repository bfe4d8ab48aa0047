package agent

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
)

// policyPlane applies network policy: the calculator's Ruleset goes into
// the nft policy table (nft.PolicyTableName) next to the NAT table. It is
// used by the reconcile goroutine only; its counters are read for
// metrics on a Conn of their own.
type policyPlane struct {
	applier PolicyKernel
	opts    nft.PolicyOptions
	ok      bool     // the last apply succeeded
	skipped []string // endpoints the last apply left out (logged when it changes)
	// gen and peerGen are a.polGen and a.peers.gen when opts were
	// computed (valid with genOK).
	gen, peerGen uint64
	genOK        bool
}

// policyOptionsFor returns the policy options, the generation they were
// computed at and whether they equal the applied ones. While nothing they
// depend on changed (a.polGen: the Felix layers; a.peers.gen: the Nodes'
// addresses) the applied ones are reused, and when only the addresses
// changed only the peers are replaced: rebuilding the options and
// comparing them on every pass costs O(nodes).
func (a *Agent) policyOptionsFor(p *policyPlane, hostIfs bool) (opts nft.PolicyOptions, gen, peerGen uint64, same bool) {
	a.mu.Lock()
	gen, peerGen = a.polGen, a.peers.gen
	var peers []netip.Addr
	if p.genOK && gen == p.gen && !hostIfs && peerGen != p.peerGen {
		peers = a.peersLocked()
	}
	a.mu.Unlock()
	if p.genOK && gen == p.gen && !hostIfs {
		if peerGen == p.peerGen {
			return p.opts, gen, peerGen, true
		}
		// Only Nodes' addresses changed: the rest stands.
		opts = p.opts
		opts.VXLANPeers = peers
		return opts, gen, peerGen, false
	}
	opts = a.policyOptions()
	if hostIfs {
		opts.HostInterfaces = a.hostInterfaces()
	}
	return opts, gen, peerGen, p.ok && equalPolicyOptions(opts, p.opts)
}

// newPolicyPlane opens the policy table's applier through the Kernel and,
// for the real one, registers the policy counters' collector.
func (a *Agent) newPolicyPlane() (*policyPlane, error) {
	k, err := a.dp.k.Policy(nft.PolicyTableName)
	if err != nil {
		return nil, err
	}
	if np, ok := k.(*nftPolicy); ok {
		a.met.registry.MustRegister(newPolicyCollector(a.cfg.NetNS, np.PolicyApplier))
	}
	return &policyPlane{applier: k}, nil
}

// policyOptions resolves the FelixConfiguration settings the policy table
// depends on (defaults, global, node.<name>, FELIX_* as for the rest).
func (a *Agent) policyOptions() nft.PolicyOptions {
	a.mu.Lock()
	s := overlayFelix(overlayFelix(a.felix.global, a.felix.node), a.felixEnv)
	prefix := a.model.Felix.InterfacePrefix
	vxlanPort := a.model.Felix.VXLANPort
	peers := a.peersLocked()
	a.mu.Unlock()
	o := nft.DefaultPolicyOptions()
	switch s.DefaultEndpointToHostAction {
	case "Accept":
		o.EndpointToHost = nft.EndpointToHostAccept
	case "Return":
		o.EndpointToHost = nft.EndpointToHostReturn
	}
	if s.FailsafeInboundHostPorts != nil {
		o.FailsafeInbound = FailsafePorts(*s.FailsafeInboundHostPorts)
	}
	if s.FailsafeOutboundHostPorts != nil {
		o.FailsafeOutbound = FailsafePorts(*s.FailsafeOutboundHostPorts)
	}
	if prefix != "" {
		o.WorkloadPrefixes = strings.Split(prefix, ",")
	}
	o.VXLANPeers = peers
	if vxlanPort > 0 {
		o.VXLANPort = uint16(vxlanPort)
	}
	return o
}

// FailsafePorts converts FelixConfiguration's list (protocol defaults to
// TCP, as upstream). An entry with a net is open to that net only (as
// upstream); one whose net does not parse (calicoctl refuses it; a bad
// FELIX_FAILSAFE* variable or a foreign write can still bring one) is
// left out rather than opened to every address. calicoctl's explain uses
// it too, so that it answers as the kernel does.
func FailsafePorts(ps []api.ProtoPort) []nft.ProtoPort {
	out := make([]nft.ProtoPort, 0, len(ps))
	for _, p := range ps {
		proto := uint8(6)
		switch strings.ToLower(p.Protocol) {
		case "udp":
			proto = 17
		case "sctp":
			proto = 132
		}
		fp := nft.ProtoPort{Protocol: proto, Port: p.Port}
		if p.Net != "" {
			n, err := api.ParseAddrOrCIDR(p.Net)
			if err != nil {
				continue
			}
			fp.Net = n.Masked()
		}
		out = append(out, fp)
	}
	return out
}

// changesEmpty reports whether a snapshot changed nothing.
func changesEmpty(c policy.Changes) bool {
	return !c.Full && len(c.Endpoints)+len(c.EndpointsRemoved)+len(c.Chains)+len(c.ChainsRemoved)+
		len(c.Sets)+len(c.SetsRemoved)+len(c.Members) == 0
}

// applyPolicy is the reconcile step's policy part: it applies the
// calculator's current Ruleset (only what changed since the last
// successful apply goes to the kernel). On a full resync it also checks
// that the table still holds what was applied and repairs it if not.
func (a *Agent) applyPolicy(res *applyResult, full bool) {
	t := time.Now()
	defer func() { a.met.reconcile.WithLabelValues("policy").Observe(time.Since(t).Seconds()) }()
	if a.pol == nil {
		p, err := a.newPolicyPlane()
		if err != nil {
			res.fail("policy", err, a.dp)
			return
		}
		a.pol = p
	}
	p := a.pol
	rs, changes := a.policySnapshot()
	hostIfs := needsHostIfaces(rs)
	opts, gen, peerGen, same := a.policyOptionsFor(p, hostIfs)
	if p.ok && !full && changesEmpty(changes) && same {
		return
	}
	if full && p.ok {
		// Someone may have edited our table: Check notices (cheaply
		// unless someone did), and Apply then restores it in place.
		if same, err := p.applier.Check(); err != nil || !same {
			a.log.Warn("policy table changed outside calico-node; restoring it", "component", "dataplane", "err", err)
		}
	}
	p.ok = false
	snap := time.Since(t)
	st, err := p.applier.Apply(rs, opts)
	if err != nil {
		res.fail("policy", err, a.dp)
		return
	}
	// Options with host interfaces (read from the kernel) are never
	// reused: the next pass reads them again.
	p.ok, p.opts, p.gen, p.peerGen, p.genOK = true, opts, gen, peerGen, !hostIfs
	if !slices.Equal(st.Skipped, p.skipped) {
		for _, s := range st.Skipped {
			a.log.Warn("endpoint gets no policy", "component", "dataplane", "detail", s)
		}
		p.skipped = st.Skipped
	}
	if st.Full || st.Adopted {
		// A full write (or a read back of the table) builds the whole
		// table at once; hand that garbage back now rather than carry it.
		debug.FreeOSMemory()
		a.log.Info("policy table written", "component", "dataplane", "snapshot", snap, "elapsed", time.Since(t),
			"endpoints", len(rs.Endpoints), "chains", len(rs.Chains), "sets", len(rs.Sets), "rules", st.Rules,
			"read_back", st.Adopted, "chains_written", st.ChainsWritten)
	} else if st.Changed() {
		a.log.Debug("policy applied", "component", "dataplane", "full", st.Full, "chains", st.ChainsWritten,
			"chains_gone", st.ChainsGone, "elems_added", st.ElemsAdded, "elems_deleted", st.ElemsDeleted, "rules", st.Rules)
	}
}

func needsHostIfaces(rs *ruleset.Ruleset) bool {
	if rs == nil {
		return false
	}
	for _, ep := range rs.Endpoints {
		if ep.Kind == ruleset.Host && ep.Interface == "" {
			return true
		}
	}
	return false
}

// hostInterfaces lists the node's interfaces with their addresses.
func (a *Agent) hostInterfaces() map[string][]netip.Addr {
	ifs, err := a.dp.k.Interfaces()
	if err != nil {
		a.log.Error("list interfaces for host endpoints", "component", "dataplane", "err", err)
		return nil
	}
	out := make(map[string][]netip.Addr, len(ifs))
	for _, i := range ifs {
		for _, p := range i.Addrs {
			out[i.Name] = append(out[i.Name], p.Addr())
		}
	}
	return out
}

// equalPolicyOptions compares the peers (one per node: the long part)
// directly and renders only the rest, which is small.
func equalPolicyOptions(x, y nft.PolicyOptions) bool {
	if !slices.Equal(x.VXLANPeers, y.VXLANPeers) {
		return false
	}
	x.VXLANPeers, y.VXLANPeers = nil, nil
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// closePolicy releases the policy plane's Conn (the table stays).
func (a *Agent) closePolicy() {
	if a.pol == nil {
		return
	}
	a.pol.applier.Close()
}
