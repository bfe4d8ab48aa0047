package nft

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/onecalico/calico/internal/ruleset"
)

// epKind selects how an endpoint chain ends.
type epKind int

const (
	// epNormal: tiers (end-of-tier drop), profiles, then drop.
	epNormal epKind = iota
	// epForward: applyOnForward tiers (end-of-tier drop), then drop;
	// only built when some policy applies (else forwarding is allowed).
	epForward
	// epNoDefault: preDNAT and doNotTrack tiers: no end-of-tier drop, no
	// profiles; what no rule decided goes on to normal policy.
	epNoDefault
)

// endpoint chain name prefixes.
const (
	pfxIngress    = "ingress/"
	pfxEgress     = "egress/"
	pfxFwdIngress = "fwd-ingress/"
	pfxFwdEgress  = "fwd-egress/"
	pfxPreDNAT    = "prednat/"
	pfxRawIngress = "raw-ingress/"
	pfxRawEgress  = "raw-egress/"
)

// endpoints builds every endpoint's chains and the verdict maps that
// dispatch to them.
func (b *pbuilder) endpoints() {
	for _, m := range []string{mapWlEgress, mapWlIngress, mapHepIngress, mapHepEgress, mapHepFwdIngress,
		mapHepFwdEgress, mapHepPreDNAT, mapHepRawIngress, mapHepRawEgress} {
		b.st.sets[m] = &pSet{set: &nftables.Set{Table: b.st.table, Name: m, IsMap: true,
			KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}}
	}
	for i := range b.rs.Endpoints {
		ep := &b.rs.Endpoints[i]
		add := func(m, prefix string, dir ruleset.Direction, tiers []ruleset.TierRef, profiles []string, kind epKind) {
			name := objName(prefix, ep.ID)
			b.endpointChain(name, ep, dir, tiers, profiles, kind)
			if ep.Interface != "*" {
				s := b.st.sets[m]
				s.elems = append(s.elems, nftables.SetElement{Key: ifname(ep.Interface),
					VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: name}})
			}
		}
		if ep.Kind == ruleset.Workload {
			add(mapWlIngress, pfxIngress, ruleset.Ingress, ep.Ingress, ep.IngressProfiles, epNormal)
			add(mapWlEgress, pfxEgress, ruleset.Egress, ep.Egress, ep.EgressProfiles, epNormal)
			continue
		}
		add(mapHepIngress, pfxIngress, ruleset.Ingress, ep.Ingress, ep.IngressProfiles, epNormal)
		add(mapHepEgress, pfxEgress, ruleset.Egress, ep.Egress, ep.EgressProfiles, epNormal)
		if len(ep.ForwardIn) > 0 {
			add(mapHepFwdIngress, pfxFwdIngress, ruleset.Ingress, ep.ForwardIn, nil, epForward)
		}
		if len(ep.ForwardOut) > 0 {
			add(mapHepFwdEgress, pfxFwdEgress, ruleset.Egress, ep.ForwardOut, nil, epForward)
		}
		if len(ep.PreDNAT) > 0 {
			add(mapHepPreDNAT, pfxPreDNAT, ruleset.Ingress, ep.PreDNAT, nil, epNoDefault)
		}
		if len(ep.Untracked) > 0 {
			add(mapHepRawIngress, pfxRawIngress, ruleset.Ingress, ep.Untracked, nil, epNoDefault)
		}
		if len(ep.UntrackedEgress) > 0 {
			add(mapHepRawEgress, pfxRawEgress, ruleset.Egress, ep.UntrackedEgress, nil, epNoDefault)
		}
	}
}

func (b *pbuilder) hasPass(id string) bool {
	c := b.rs.Chains[id]
	if c == nil {
		return false
	}
	for _, r := range c.Rules {
		if r.Action == ruleset.Pass {
			return true
		}
	}
	return false
}

// endpointChain builds one endpoint chain: anti-spoofing for a workload's
// egress, then each tier (policies in order, skipped after a Pass; the
// end-of-tier drop), then the profiles and the final drop.
func (b *pbuilder) endpointChain(name string, ep *ruleset.Endpoint, dir ruleset.Direction, tiers []ruleset.TierRef, profiles []string, kind epKind) {
	ch := &pChain{chain: &nftables.Chain{Name: name, Table: b.st.table}}
	add := func(es ...[]expr.Any) { ch.rules = append(ch.rules, pRule{exprs: counted(es...)}) }
	if ep.Kind == ruleset.Workload && dir == ruleset.Egress {
		ch.rules = append(ch.rules, b.antiSpoof(ep.Addrs)...)
		add(l4proto(expr.CmpOpEq, 17), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(b.o.VXLANPort)}}, mk(verdict(expr.VerdictDrop)))
		add(l4proto(expr.CmpOpEq, 4), mk(verdict(expr.VerdictDrop)))
	}
	drop := ""
	if kind != epNoDefault {
		p := "drop/"
		if kind == epForward {
			p = "drop-fwd/"
		}
		drop = objName(p+dir.String()+"/", ep.ID)
		b.st.counters[drop] = CounterInfo{Endpoint: ep.ID, Interface: ep.Interface, Direction: dir}
	}
	dropRule := func(pass bool) {
		var es []expr.Any
		if pass {
			es = markClear(MarkPass)
		}
		es = append(es, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: drop}, verdict(expr.VerdictDrop))
		ch.rules = append(ch.rules, pRule{exprs: es})
	}
	for _, t := range tiers {
		add(clearMarkBits(MarkPass))
		pass := b.jumps(ch, t.Chains)
		if kind != epNoDefault && t.EndOfTier != ruleset.Pass {
			dropRule(pass)
		}
	}
	if kind == epNormal {
		if len(tiers) > 0 {
			add(clearMarkBits(MarkPass))
		}
		// A Pass in a profile goes on to the next profile.
		prevPass := false
		for _, id := range profiles {
			if b.rs.Chains[id] == nil {
				continue
			}
			if prevPass {
				add(clearMarkBits(MarkPass))
			}
			ch.rules = append(ch.rules, pRule{exprs: []expr.Any{&expr.Counter{}, jump(policyChainName(id))}})
			prevPass = b.hasPass(id)
		}
	}
	if kind != epNoDefault {
		dropRule(false)
	}
	b.st.chains[name] = ch
}

// jumps adds a jump to each existing chain, guarded by "no Pass yet" once
// an earlier chain can Pass; it reports whether any can.
func (b *pbuilder) jumps(ch *pChain, ids []string) bool {
	pass := false
	for _, id := range ids {
		if b.rs.Chains[id] == nil {
			continue
		}
		var es []expr.Any
		if pass {
			es = markClear(MarkPass)
		}
		es = append(es, &expr.Counter{}, jump(policyChainName(id)))
		ch.rules = append(ch.rules, pRule{exprs: es})
		pass = pass || b.hasPass(id)
	}
	return pass
}

// antiSpoof drops what a workload sends from an address that is not its
// own, per family.
func (b *pbuilder) antiSpoof(addrs []netip.Prefix) []pRule {
	var out []pRule
	for _, f := range []family{v4, v6} {
		var mine []netip.Prefix
		for _, a := range addrs {
			if a.Addr().Unmap().Is4() == (f == v4) {
				mine = append(mine, a)
			}
		}
		pr := pRule{exprs: nfproto(f)}
		src := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.srcOffset(), Len: f.addrLen()}
		switch {
		case len(mine) == 1 && mine[0].IsSingleIP():
			// One address (the usual pod) is a compare: an anonymous set
			// costs the kernel a walk of the whole transaction when it is
			// bound, which a full table write does for every endpoint.
			pr.exprs = append(pr.exprs, src, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mine[0].Addr().Unmap().AsSlice()})
		case len(mine) > 0:
			a, l := b.newAnon(f.keyType(), true, prefixElements(mine, f), 1, true)
			pr.anon = append(pr.anon, a)
			pr.exprs = append(pr.exprs, src, l)
		}
		pr.exprs = append(pr.exprs, &expr.Counter{}, verdict(expr.VerdictDrop))
		out = append(out, pr)
	}
	return out
}

// star returns the "*" host endpoint, if any.
func (b *pbuilder) star() *ruleset.Endpoint {
	for i := range b.rs.Endpoints {
		if ep := &b.rs.Endpoints[i]; ep.Kind == ruleset.Host && ep.Interface == "*" {
			return ep
		}
	}
	return nil
}

func (b *pbuilder) anyHost() bool {
	for _, ep := range b.rs.Endpoints {
		if ep.Kind == ruleset.Host {
			return true
		}
	}
	return false
}

func (b *pbuilder) baseChain(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *pChain {
	accept := nftables.ChainPolicyAccept
	ch := &pChain{chain: &nftables.Chain{Name: name, Table: b.st.table, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: prio, Policy: &accept}}
	b.st.chains[name] = ch
	return ch
}

func (ch *pChain) add(es ...[]expr.Any) { ch.rules = append(ch.rules, pRule{exprs: counted(es...)}) }

// workloadIfaces adds "iif/oifname <prefix>* <verdict>" per prefix.
func (b *pbuilder) workloadIfaces(ch *pChain, in bool, v expr.VerdictKind) {
	for _, p := range b.o.WorkloadPrefixes {
		ch.add(ifMatch(in, p+"*", expr.CmpOpEq), mk(verdict(v)))
	}
}

// failsafe accepts the failsafe ports: one rule per protocol for the
// ports open to any address, and one per protocol and net for those
// restricted to a net (the source for inbound ports, fromSrc, the
// destination for outbound ones; only in the net's address family).
func (b *pbuilder) failsafe(ch *pChain, ports []ProtoPort, fromSrc bool) {
	type key struct {
		proto uint8
		net   netip.Prefix
	}
	byKey := map[key][]ruleset.PortRange{}
	var keys []key
	for _, p := range ports {
		k := key{p.Protocol, p.Net}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], ruleset.PortRange{First: p.Port, Last: p.Port})
	}
	for _, k := range keys {
		var pr pRule
		if k.net.IsValid() {
			f, off := v4, v4.dstOffset()
			if !k.net.Addr().Unmap().Is4() {
				f = v6
			}
			if off = f.dstOffset(); fromSrc {
				off = f.srcOffset()
			}
			a, l := b.newAnon(f.keyType(), true, prefixElements([]netip.Prefix{k.net}, f), 1, false)
			pr.anon = append(pr.anon, a)
			pr.exprs = append(nfproto(f), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.addrLen()}, l)
		}
		pr.exprs = append(pr.exprs, l4proto(expr.CmpOpEq, k.proto)...)
		b.ports(&pr, byKey[k], 2, false)
		pr.exprs = append(pr.exprs, &expr.Counter{}, verdict(expr.VerdictAccept))
		ch.rules = append(ch.rules, pr)
	}
}

// starJump sends what is left (not a workload, not lo, no named host
// endpoint) to the "*" endpoint's chain with the given prefix.
func (b *pbuilder) starJump(ch *pChain, in bool, prefix string, present bool) {
	star := b.star()
	if star == nil || !present {
		return
	}
	ch.add(ifMatch(in, "lo", expr.CmpOpNeq), mk(jump(objName(prefix, star.ID))))
}

// ndTypes accepts IPv6 neighbour discovery and MLD from workloads
// (link-local sources that anti-spoofing and the endpoint-to-host drop
// would otherwise stop).
func (b *pbuilder) ndTypes(ch *pChain) {
	for _, r := range [][2]byte{{130, 133}, {135, 136}} {
		for _, p := range b.o.WorkloadPrefixes {
			ch.add(nfproto(v6), ifMatch(true, p+"*", expr.CmpOpEq), l4proto(expr.CmpOpEq, 58), []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{r[0]}, ToData: []byte{r[1]}},
			}, mk(verdict(expr.VerdictAccept)))
		}
	}
}

// baseChains builds the hooked chains (see the package comment).
func (b *pbuilder) baseChains() {
	prio := func(p int32) *nftables.ChainPriority { v := nftables.ChainPriority(p); return &v }
	star := b.star()
	hosts := b.anyHost()
	untracked := len(b.untracked) > 0
	conntrack := func(ch *pChain, invalid bool) {
		ch.add(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), mk(verdict(expr.VerdictAccept)))
		if invalid {
			ch.add(ctState(expr.CtStateBitINVALID), mk(verdict(expr.VerdictDrop)))
		}
		if untracked {
			ch.add(ctState(expr.CtStateBitUNTRACKED), markSet(MarkAccept), mk(verdict(expr.VerdictAccept)))
		}
	}

	fwd := b.baseChain(chainForward, nftables.ChainHookForward, prio(0))
	conntrack(fwd, true)
	fwd.add(vmapDispatch(true, mapWlEgress))
	b.workloadIfaces(fwd, true, expr.VerdictDrop)
	fwd.add(vmapDispatch(true, mapHepFwdIngress))
	b.starJump(fwd, true, pfxFwdIngress, star != nil && len(star.ForwardIn) > 0)

	to := b.baseChain(chainForwardTo, nftables.ChainHookForward, prio(1))
	conntrack(to, false)
	to.add(vmapDispatch(false, mapWlIngress))
	b.workloadIfaces(to, false, expr.VerdictDrop)
	to.add(vmapDispatch(false, mapHepFwdEgress))
	b.starJump(to, false, pfxFwdEgress, star != nil && len(star.ForwardOut) > 0)

	in := b.baseChain(chainInput, nftables.ChainHookInput, prio(0))
	conntrack(in, true)
	b.ndTypes(in)
	in.add(vmapDispatch(true, mapWlEgress))
	b.workloadIfaces(in, true, expr.VerdictDrop)
	if hosts {
		b.failsafe(in, b.o.FailsafeInbound, true)
		b.vxlanPeers(in, true)
	}
	in.add(vmapDispatch(true, mapHepIngress))
	b.starJump(in, true, pfxIngress, true)

	if b.o.EndpointToHost == EndpointToHostDrop {
		th := b.baseChain(chainInputToHost, nftables.ChainHookInput, prio(1))
		conntrack(th, false)
		b.ndTypes(th)
		b.workloadIfaces(th, true, expr.VerdictDrop)
	}

	out := b.baseChain(chainOutput, nftables.ChainHookOutput, prio(0))
	conntrack(out, false)
	b.workloadIfaces(out, false, expr.VerdictAccept)
	if hosts {
		b.failsafe(out, b.o.FailsafeOutbound, false)
		b.vxlanPeers(out, false)
	}
	out.add(vmapDispatch(false, mapHepEgress))
	b.starJump(out, false, pfxEgress, true)

	if b.some(func(ep *ruleset.Endpoint) bool { return len(ep.PreDNAT) > 0 }) {
		pre := b.baseChain(chainPreDNAT, nftables.ChainHookPrerouting, prio(-150))
		conntrack(pre, false)
		b.workloadIfaces(pre, true, expr.VerdictAccept)
		b.failsafe(pre, b.o.FailsafeInbound, true)
		pre.add(vmapDispatch(true, mapHepPreDNAT))
		b.starJump(pre, true, pfxPreDNAT, star != nil && len(star.PreDNAT) > 0)
	}
	if untracked {
		raw := b.baseChain(chainRawPre, nftables.ChainHookPrerouting, prio(-300))
		b.workloadIfaces(raw, true, expr.VerdictAccept)
		b.failsafe(raw, b.o.FailsafeInbound, true)
		raw.add(vmapDispatch(true, mapHepRawIngress))
		b.starJump(raw, true, pfxRawIngress, star != nil && len(star.Untracked) > 0)
		rawOut := b.baseChain(chainRawOut, nftables.ChainHookOutput, prio(-300))
		b.workloadIfaces(rawOut, false, expr.VerdictAccept)
		b.failsafe(rawOut, b.o.FailsafeOutbound, false)
		rawOut.add(vmapDispatch(false, mapHepRawEgress))
		b.starJump(rawOut, false, pfxRawEgress, star != nil && len(star.UntrackedEgress) > 0)
	}
}

func (b *pbuilder) some(f func(*ruleset.Endpoint) bool) bool {
	for i := range b.rs.Endpoints {
		if f(&b.rs.Endpoints[i]) {
			return true
		}
	}
	return false
}

// vxlanPeers accepts VXLAN from (in) or to the other nodes.
func (b *pbuilder) vxlanPeers(ch *pChain, in bool) {
	var peers []netip.Prefix
	for _, a := range b.o.VXLANPeers {
		if a.Unmap().Is4() {
			peers = append(peers, netip.PrefixFrom(a.Unmap(), 32))
		}
	}
	if len(peers) == 0 {
		return
	}
	off := v4.dstOffset()
	if in {
		off = v4.srcOffset()
	}
	a, l := b.newAnon(v4.keyType(), true, prefixElements(peers, v4), 1, false)
	pr := pRule{anon: []*anonSet{a}, exprs: nfproto(v4)}
	pr.exprs = append(pr.exprs, l4proto(expr.CmpOpEq, 17)...)
	pr.exprs = append(pr.exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(b.o.VXLANPort)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}, l,
		&expr.Counter{}, verdict(expr.VerdictAccept))
	ch.rules = append(ch.rules, pr)
}
