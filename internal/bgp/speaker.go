//go:build !nogobgp

package bgp

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	gobgpapi "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Speaker runs one GoBGP server and converges it to a Desired state.
// Apply, Stop and Status may be called from any goroutine; Apply calls are
// serialised.
type Speaker struct {
	log      *slog.Logger
	onChange func(sessions bool)

	opMu       sync.Mutex // serialises Apply and Stop
	srv        *server.BgpServer
	adapter    *slogAdapter
	cancel     context.CancelFunc
	globalHash string
	peers      map[string]peerEntry
	origin     map[netip.Prefix]string // prefix -> hash of its path
	nextHop    [2]netip.Addr           // of originated IPv4 and IPv6 prefixes
	policyHash string                  // of the BGPFilter policies installed

	mu      sync.Mutex                // guards the fields below (written by GoBGP's callbacks)
	learned map[netip.Prefix]Learned  // changed in place by onEvent
	snap    map[netip.Prefix]Learned  // immutable copy for readers, nil when stale
	dirty   map[netip.Prefix]struct{} // changed since the last Learned or TakeChanges
	states  map[netip.Addr]*sessionState
	gen     uint64 // bumped whenever learned changes
}

type peerEntry struct {
	hash string
	peer Peer
}

// sessionState is what peer events tell about one session.
type sessionState struct {
	state gobgpapi.PeerState_SessionState
	since time.Time
	flaps uint64
}

// NewSpeaker returns a stopped speaker. onChange is called (from GoBGP's
// goroutines; it must not block) whenever learned routes change
// (sessions false) or session states change (sessions true).
func NewSpeaker(log *slog.Logger, onChange func(sessions bool)) *Speaker {
	if onChange == nil {
		onChange = func(bool) {}
	}
	return &Speaker{log: log, onChange: onChange, learned: map[netip.Prefix]Learned{},
		dirty: map[netip.Prefix]struct{}{}, states: map[netip.Addr]*sessionState{}}
}

func hashOf(v any) string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s[:12])
}

// Apply converges the server to d: it (re)starts the server when the
// global settings changed, then adds, replaces and deletes only the peers
// and originated prefixes that differ. Errors of single peers or paths
// are joined; the rest is still applied.
func (s *Speaker) Apply(ctx context.Context, d Desired) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if !d.Enabled {
		s.stopLocked(true)
		return nil
	}
	// The log level is applied in place; anything else restarts the server.
	g := d.Global
	g.LogSeverity = ""
	if gh := hashOf(g); s.srv == nil || gh != s.globalHash {
		s.stopLocked(true)
		if err := s.startLocked(ctx, d.Global); err != nil {
			return err
		}
		s.globalHash = gh
	}
	s.adapter.SetLevel(levelFor(d.Global.LogSeverity))
	errs := []error{s.reconcilePeers(ctx, d.Peers), s.reconcilePolicies(ctx, d.Peers, d.ExportPools)}
	errs = append(errs, s.reconcileOrigin(ctx, [2]netip.Addr{d.NextHop, d.NextHop6}, d.Originated))
	return errors.Join(errs...)
}

func (s *Speaker) startLocked(ctx context.Context, g Global) error {
	s.adapter = newSlogAdapter(s.log.With("component", "gobgp"), levelFor(g.LogSeverity))
	srv := server.NewBgpServer(server.LoggerOption(s.adapter))
	go srv.Serve()
	addrs := g.ListenAddrs
	if len(addrs) == 0 {
		addrs = []string{"0.0.0.0"}
	}
	err := srv.StartBgp(ctx, &gobgpapi.StartBgpRequest{Global: &gobgpapi.Global{
		Asn: g.ASNumber, RouterId: g.RouterID.String(), ListenPort: g.ListenPort, ListenAddresses: addrs,
		GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true, RestartTime: g.RestartTime},
	}})
	if err != nil {
		srv.Stop()
		return fmt.Errorf("start bgp (router id %s, as %d, port %d): %w", g.RouterID, g.ASNumber, g.ListenPort, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	req := &gobgpapi.WatchEventRequest{
		Peer:  &gobgpapi.WatchEventRequest_Peer{},
		Table: &gobgpapi.WatchEventRequest_Table{Filters: []*gobgpapi.WatchEventRequest_Table_Filter{{Type: gobgpapi.WatchEventRequest_Table_Filter_BEST, Init: true}}},
	}
	if err := srv.WatchEvent(wctx, req, s.onEvent); err != nil {
		cancel()
		srv.Stop()
		return fmt.Errorf("watch bgp events: %w", err)
	}
	s.srv, s.cancel = srv, cancel
	s.peers, s.origin = map[string]peerEntry{}, map[netip.Prefix]string{}
	s.log.Info("BGP speaker started", "component", "bgp", "router_id", g.RouterID, "as", g.ASNumber, "port", g.ListenPort, "listen", addrs)
	return nil
}

// Stop stops the speaker. With hard, peers are told (a NOTIFICATION) and
// drop this node's routes; without, the server is abandoned as it is:
// its sessions end with the process and peers doing graceful restart keep
// the routes until this node is back.
func (s *Speaker) Stop(hard bool) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.stopLocked(hard)
}

func (s *Speaker) stopLocked(hard bool) {
	if s.srv == nil {
		return
	}
	s.cancel()
	if hard {
		s.srv.Stop()
	}
	s.srv, s.globalHash, s.policyHash = nil, "", ""
	s.mu.Lock()
	s.learned, s.snap = map[netip.Prefix]Learned{}, nil
	clear(s.dirty)
	s.states = map[netip.Addr]*sessionState{}
	s.gen++
	s.mu.Unlock()
	s.onChange(true)
}

func (s *Speaker) reconcilePeers(ctx context.Context, want []Peer) error {
	var errs []error
	keep := make(map[string]bool, len(want))
	for _, p := range want {
		keep[p.Key()] = true
	}
	for key, e := range s.peers {
		if !keep[key] {
			if err := s.srv.DeletePeer(ctx, &gobgpapi.DeletePeerRequest{Address: e.peer.Addr.String()}); err != nil {
				errs = append(errs, fmt.Errorf("delete peer %s: %w", key, err))
				continue
			}
			delete(s.peers, key)
			s.log.Info("BGP peer removed", "component", "bgp", "peer", key, "type", e.peer.Type)
		}
	}
	for _, p := range want {
		// Filters and the next-hop mode are policies, changed without
		// resetting the session.
		q := p
		q.Import, q.Export, q.NextHop = nil, nil, ""
		h := hashOf(q)
		old, exists := s.peers[p.Key()]
		if exists && old.hash == h {
			continue
		}
		if exists {
			if err := s.srv.DeletePeer(ctx, &gobgpapi.DeletePeerRequest{Address: p.Addr.String()}); err != nil {
				errs = append(errs, fmt.Errorf("delete peer %s: %w", p.Key(), err))
				continue
			}
			delete(s.peers, p.Key())
		}
		if err := s.srv.AddPeer(ctx, &gobgpapi.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s: %w", p.Key(), err))
			continue
		}
		s.peers[p.Key()] = peerEntry{hash: h, peer: p}
		if p.Problem != "" {
			s.log.Error("BGP peer kept down", "component", "bgp", "peer", p.Key(), "reason", p.Problem)
		} else {
			s.log.Info("BGP peer configured", "component", "bgp", "peer", p.Key(), "type", p.Type, "as", p.ASNumber, "passive", p.Passive)
		}
	}
	return errors.Join(errs...)
}

var (
	familyV4 = &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}
	familyV6 = &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP6, Safi: gobgpapi.Family_SAFI_UNICAST}
)

// familyOf is the unicast family of an address.
func familyOf(a netip.Addr) *gobgpapi.Family {
	if a.Is4() {
		return familyV4
	}
	return familyV6
}

// connectRetry is the ConnectRetry timer (s): GoBGP waits between one and
// two times it after a failed connect (a peer not listening yet, or one
// that dropped the connection) before the next. Its first connect of a
// session comes 1-2 s after the peer is added whatever this is
// (connectLoop in GoBGP v3's pkg/server/fsm.go starts at its 1 s minimum),
// so 1, the minimum, makes a retry as quick as a first attempt.
const connectRetry = 1

// apiPeer converts a Peer to GoBGP's configuration: graceful restart on,
// the unicast family of the peer's address only (as upstream's separate
// bird and bird6), multihop for eBGP (as upstream's templates).
func apiPeer(p Peer) *gobgpapi.Peer {
	out := &gobgpapi.Peer{
		Conf: &gobgpapi.PeerConf{NeighborAddress: p.Addr.String(), PeerAsn: p.ASNumber, LocalAsn: p.LocalAS,
			AuthPassword: p.Password, AllowOwnAsn: p.AllowOwnAS, AdminDown: p.Down, Description: string(p.Type)},
		Transport:       &gobgpapi.Transport{LocalAddress: p.LocalAddr, PassiveMode: p.Passive, RemotePort: uint32(p.Port)},
		Timers:          &gobgpapi.Timers{Config: &gobgpapi.TimersConfig{ConnectRetry: connectRetry}},
		GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true, RestartTime: p.RestartTime},
		AfiSafis: []*gobgpapi.AfiSafi{{
			Config:            &gobgpapi.AfiSafiConfig{Family: familyOf(p.Addr), Enabled: true},
			MpGracefulRestart: &gobgpapi.MpGracefulRestart{Config: &gobgpapi.MpGracefulRestartConfig{Enabled: true}},
		}},
	}
	if p.Keepalive > 0 {
		out.Timers.Config.KeepaliveInterval = uint64(p.Keepalive)
		out.Timers.Config.HoldTime = 3 * uint64(p.Keepalive)
	}
	if p.RRClient {
		out.RouteReflector = &gobgpapi.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: p.ClusterID}
	}
	switch {
	case p.TTLSecurity > 0:
		out.TtlSecurity = &gobgpapi.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurity))}
	default:
		out.EbgpMultihop = &gobgpapi.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return out
}

func (s *Speaker) reconcileOrigin(ctx context.Context, nhs [2]netip.Addr, want []Origin) error {
	var errs []error
	if nhs != s.nextHop {
		// Every path carries the next hop: re-announce them all.
		s.origin = map[netip.Prefix]string{}
		s.nextHop = nhs
	}
	nhOf := func(p netip.Prefix) netip.Addr {
		if p.Addr().Is4() {
			return nhs[0]
		}
		return nhs[1]
	}
	keep := make(map[netip.Prefix]bool, len(want))
	for _, o := range want {
		keep[o.Prefix] = true
	}
	for p := range s.origin {
		if keep[p] {
			continue
		}
		path, err := originPath(Origin{Prefix: p}, nhOf(p), true)
		if err == nil {
			err = s.srv.DeletePath(ctx, &gobgpapi.DeletePathRequest{TableType: gobgpapi.TableType_GLOBAL, Family: familyOf(p.Addr()), Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		delete(s.origin, p)
	}
	for _, o := range want {
		h := hashOf(o)
		if s.origin[o.Prefix] == h {
			continue
		}
		path, err := originPath(o, nhOf(o.Prefix), false)
		if err == nil {
			_, err = s.srv.AddPath(ctx, &gobgpapi.AddPathRequest{TableType: gobgpapi.TableType_GLOBAL, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce %s: %w", o.Prefix, err))
			continue
		}
		s.origin[o.Prefix] = h
	}
	return errors.Join(errs...)
}

// originPath builds a locally originated path (origin IGP, next hop
// this node): IPv4 with a NEXT_HOP, IPv6 in an MP_REACH_NLRI.
func originPath(o Origin, nh netip.Addr, withdraw bool) (*gobgpapi.Path, error) {
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if o.Prefix.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(o.Prefix.Bits()), o.Prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh.String()))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(o.Prefix.Bits()), o.Prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	if len(o.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(o.Communities))
	}
	if len(o.Large) > 0 {
		var lc []*bgp.LargeCommunity
		for _, l := range o.Large {
			lc = append(lc, bgp.NewLargeCommunity(l[0], l[1], l[2]))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}
	return apiutil.NewPath(nlri, withdraw, attrs, time.Now())
}

// onEvent records a GoBGP event and signals; it does no other work.
func (s *Speaker) onEvent(r *gobgpapi.WatchEventResponse) {
	if pe := r.GetPeer(); pe != nil {
		s.onPeer(pe)
		return
	}
	t := r.GetTable()
	if t == nil || len(t.Paths) == 0 {
		return
	}
	changed := false
	s.mu.Lock()
	next := s.learned
	for _, p := range t.Paths {
		pfx, l, ok := decodePath(p)
		if !ok {
			continue
		}
		// Paths we originate have no neighbour (GoBGP reports "<nil>"):
		// such a best path only ends a learned one. A peer's path costs
		// one map operation (10,000 paths from one peer are 10,000 calls).
		switch {
		case !l.Peer.IsValid():
			if _, had := next[pfx]; !had {
				continue
			}
			delete(next, pfx)
		case p.IsWithdraw:
			delete(next, pfx)
		default:
			next[pfx] = l
		}
		s.dirty[pfx] = struct{}{}
		changed = true
	}
	if changed {
		s.snap = nil
		s.gen++
	}
	s.mu.Unlock()
	if changed {
		s.onChange(false)
	}
}

func (s *Speaker) onPeer(pe *gobgpapi.WatchEventResponse_PeerEvent) {
	if pe.Type != gobgpapi.WatchEventResponse_PeerEvent_STATE || pe.Peer == nil || pe.Peer.State == nil {
		return
	}
	addr, err := netip.ParseAddr(pe.Peer.State.NeighborAddress)
	if err != nil {
		return
	}
	st := pe.Peer.State.SessionState
	s.mu.Lock()
	ss := s.states[addr]
	if ss == nil {
		ss = &sessionState{}
		s.states[addr] = ss
	}
	if ss.state != st {
		if ss.state == gobgpapi.PeerState_ESTABLISHED {
			ss.flaps++
		}
		ss.state, ss.since = st, time.Now()
	}
	s.mu.Unlock()
	s.log.Info("BGP session state", "component", "bgp", "peer", addr, "state", stateName(st))
	s.onChange(true)
}

// Running reports whether the server is started.
func (s *Speaker) Running() bool {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.srv != nil
}

// Learned returns the best paths learned from peers and a generation
// number that changes whenever they do. The map must not be modified.
// Changes up to this call are no longer reported by TakeChanges.
func (s *Speaker) Learned() (map[netip.Prefix]Learned, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		s.snap = maps.Clone(s.learned)
	}
	clear(s.dirty)
	return s.snap, s.gen
}

// LearnedCount is the number of best paths learned from peers. Unlike
// Learned, it leaves the changes TakeChanges reports alone.
func (s *Speaker) LearnedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.learned)
}

// TakeChanges appends to buf the prefixes whose best path changed since
// the last Learned or TakeChanges call, with their state now, and
// forgets them. A caller that applied Learned's map and every
// TakeChanges since holds the current state.
func (s *Speaker) TakeChanges(buf []Change) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.dirty {
		l, ok := s.learned[p]
		buf = append(buf, Change{Prefix: p, Learned: l, Gone: !ok})
	}
	clear(s.dirty)
	return buf
}

// Status lists the configured sessions, sorted by address.
func (s *Speaker) Status(ctx context.Context) []PeerStatus {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.srv == nil {
		return nil
	}
	counts := map[string][3]uint64{}
	_ = s.srv.ListPeer(ctx, &gobgpapi.ListPeerRequest{EnableAdvertised: true}, func(p *gobgpapi.Peer) {
		var c [3]uint64
		for _, af := range p.AfiSafis {
			if af.State != nil {
				c[0] += af.State.Received
				c[1] += af.State.Accepted
				c[2] += af.State.Advertised
			}
		}
		if p.Conf != nil {
			counts[p.Conf.NeighborAddress] = c
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.peers))
	for _, key := range sortedKeys(s.peers) {
		p := s.peers[key].peer
		ps := PeerStatus{Address: key, Type: p.Type, State: stateName(gobgpapi.PeerState_IDLE), Info: p.Problem}
		if ss := s.states[p.Addr]; ss != nil {
			ps.State, ps.Since, ps.Flaps = stateName(ss.state), ss.since, ss.flaps
		}
		c := counts[p.Addr.String()]
		ps.Received, ps.Accepted, ps.Advertised = c[0], c[1], c[2]
		out = append(out, ps)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// stateName renders a session state as BIRD's info column does.
func stateName(st gobgpapi.PeerState_SessionState) string {
	switch st {
	case gobgpapi.PeerState_IDLE:
		return "Idle"
	case gobgpapi.PeerState_CONNECT:
		return "Connect"
	case gobgpapi.PeerState_ACTIVE:
		return "Active"
	case gobgpapi.PeerState_OPENSENT:
		return "OpenSent"
	case gobgpapi.PeerState_OPENCONFIRM:
		return "OpenConfirm"
	case gobgpapi.PeerState_ESTABLISHED:
		return "Established"
	}
	return strings.ToLower(st.String())
}
