package labtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
)

// The lab's IPv6 underlay (AddIPv6): subnet 10.<s>.0.0/24 also carries
// fd00:<s>::/64 (the digits of s read as hex), the router at fd00:<s>::1
// and node 10.<s>.0.<h> at fd00:<s>::<h>; the external host is ExternalIP6
// behind the router at ExternalRouterIP6.
var (
	ExternalIP6       = netip.MustParseAddr("fd00:ff::10")
	ExternalRouterIP6 = netip.MustParseAddr("fd00:ff::1")
)

// subnet6 is the IPv6 subnet paired with 10.<s>.0.0/24.
func subnet6(s int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/64", s))
}

// addr6 is host h's address in subnet6(s).
func addr6(s, h int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("fd00:%d::%d/64", s, h))
}

// AddIPv6 gives the lab's existing subnets, router, nodes and external
// host (if any) their IPv6 addresses and routes, and turns on IPv6
// forwarding in the router. Addresses skip duplicate address detection so
// they are usable at once. Call it after the nodes are added.
func (l *Lab) AddIPv6() {
	t := l.T
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := netns.SetSysctl(l.Router, "net/ipv6/conf/all/forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	var subnets []int
	for s := range l.subnets {
		subnets = append(subnets, s)
		l.addAddr6(l.Router, fmt.Sprintf("eth%d", s), addr6(s, 1))
	}
	for _, n := range l.nodes {
		s, h := n.subnetHost()
		n.IP6 = addr6(s, h)
		l.addAddr6(n.NS, "eth0", n.IP6)
		l.route6(n.NS, netip.Prefix{}, addr6(s, 1).Addr())
	}
	if l.External != "" {
		l.addAddr6(l.Router, "ext0", netip.PrefixFrom(ExternalRouterIP6, 64))
		l.addAddr6(l.External, "eth0", netip.PrefixFrom(ExternalIP6, 64))
		for _, s := range subnets {
			l.route6(l.External, subnet6(s), ExternalRouterIP6)
		}
	}
}

// subnetHost reads s and h back from the node's 10.<s>.0.<h>.
func (n *Node) subnetHost() (int, int) {
	b := n.IP.Addr().As4()
	return int(b[1]), int(b[3])
}

func (l *Lab) addAddr6(ns, ifName string, p netip.Prefix) {
	h := handle(l.T, ns)
	lk, err := h.LinkByName(ifName)
	if err == nil {
		err = h.AddrAdd(lk, &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD})
	}
	if err != nil {
		l.T.Fatalf("address %s on %s: %v", p, ifName, err)
	}
}

// route6 adds a route to dst (invalid: the default route) via gw.
func (l *Lab) route6(ns string, dst netip.Prefix, gw netip.Addr) {
	r := &netlink.Route{Gw: gw.AsSlice(), Family: unix.AF_INET6}
	if dst.IsValid() {
		r.Dst = ipNet(dst)
	} else {
		r.Dst = ipNet(netip.MustParsePrefix("::/0"))
	}
	if err := handle(l.T, ns).RouteAdd(r); err != nil {
		l.T.Fatalf("IPv6 route %s via %s: %v", dst, gw, err)
	}
}

// NetconfDual is Netconf with both families assigned: IPv4 from pool4
// and IPv6 from pool6 (each "" for any pool of its family).
func (n *Node) NetconfDual(pool4, pool6 string) []byte {
	var conf map[string]any
	if err := json.Unmarshal(n.Netconf(), &conf); err != nil {
		panic(err)
	}
	ipam := conf["ipam"].(map[string]any)
	ipam["assign_ipv6"] = "true"
	if pool4 != "" {
		ipam["ipv4_pools"] = []string{pool4}
	}
	if pool6 != "" {
		ipam["ipv6_pools"] = []string{pool6}
	}
	b, err := json.Marshal(conf)
	if err != nil {
		panic(err)
	}
	return b
}

// CNIAddDual is CNIAdd for a dual-stack pod: the result must carry an
// IPv4 and an IPv6 address. Del works on it as on any CNIPod (the netconf
// it uses assigns IPv4 only, which is what DEL needs: DEL releases by
// handle).
func (n *Node) CNIAddDual(ctx context.Context, name, pool4, pool6 string) (*CNIPod, error) {
	l := n.Lab
	p := &CNIPod{Node: n, Name: name, ContainerID: n.ContainerID(name), NS: l.newNS(l.T)}
	out, err := n.CNI(ctx, BinDir(l.T), "ADD", p.ContainerID, p.NS, n.NetconfDual(pool4, pool6))
	if err != nil {
		return nil, err
	}
	p.Result = out
	if err := p.parseResult(); err != nil {
		return nil, err
	}
	if !p.IP6.IsValid() {
		return nil, fmt.Errorf("CNI result of %s lacks an IPv6 address: %s", p.ContainerID, out)
	}
	p.WEPName, err = api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: n.Name, Orchestrator: api.OrchestratorCNI, ContainerID: p.ContainerID, Endpoint: "eth0"})
	return p, err
}

// Ping6 is Ping for IPv6 destinations (ping -6).
func Ping6(ns string, dst netip.Addr, count int) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeoutFor(count))
	defer cancel()
	_, err := Exec(ctx, ns, "ping", "-6", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-n", "-q", dst.String())
	return err
}

// IPv6Routes is `ip -6 route` in ns, one route a line.
func IPv6Routes(ns string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeoutFor(1))
	defer cancel()
	out, err := Exec(ctx, ns, "ip", "-6", "route", "show")
	return strings.TrimSpace(out), err
}

func timeoutFor(count int) time.Duration { return time.Duration(count+5) * time.Second }
