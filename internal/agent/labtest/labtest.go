// Package labtest builds multi-node Calico labs out of network namespaces
// for tests and benchmarks: a fabric namespace with one bridge per subnet, a
// router between the subnets, an optional "external" host behind the
// router (AddExternal), node namespaces wired to the bridges, and pods.
// Pods come two ways: through the real CNI exec path (AddCNIPod / CNIAdd:
// the calico plugin binary run inside the node's namespace with calico-ipam,
// as a container runtime would), or plumbed directly with
// link.SetupWorkload plus the records the plugin and IPAM would write
// (AddPod; for daemon tests that want fixed addresses and no plugin). Node
// daemons run in-process (StartAgent) or as real calico-node processes
// (StartProcess); calicoctl runs as the real binary (Calicoctl).
//
// The topology follows reference/lab.md §2: subnets 10.<s>.0.0/24 with the
// router at .1; nodes get a default route via their subnet's router so
// that proxy ARP for 169.254.1.1 works (the kernel answers only when it has
// a route toward the target through another interface).
//
// It is test support: it may shell out to ip and ping. It must not import
// internal/testutil (the dependency rules allow that only in _test files),
// so callers pass testutil.NewNetNS in.
package labtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
)

// Lab is a set of namespaces on one host sharing one etcd.
type Lab struct {
	T      testing.TB
	Fabric string // netns path holding the bridges
	Router string // netns path routing between the subnets
	// External is the "external" host's netns path (AddExternal), "" if none.
	External string
	Endpoint string // etcd endpoint (unix socket URL)
	Store    kv.Store
	Client   *datastore.Client
	Dir      string

	newNS   func(testing.TB) string
	mu      sync.Mutex
	subnets map[int]bool
	nodes   map[string]*Node
}

// New makes the fabric and router namespaces and connects to etcd at
// endpoint. newNS creates a throwaway namespace removed at test end
// (testutil.NewNetNS).
func New(t testing.TB, newNS func(testing.TB) string, endpoint string) *Lab {
	t.Helper()
	st, err := etcd.New(etcd.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatalf("connect to etcd %s: %v", endpoint, err)
	}
	t.Cleanup(func() { st.Close() })
	return NewWithStore(t, newNS, endpoint, st)
}

// NewWithStore is New for a datastore reached with more than an endpoint
// (TLS, several members): endpoint is what the lab's clients are given
// (ETCD_ENDPOINTS, the netconf's etcd_endpoints; comma-separated for
// several) and st the lab's own connection, which the caller closes.
func NewWithStore(t testing.TB, newNS func(testing.TB) string, endpoint string, st kv.Store) *Lab {
	t.Helper()
	l := &Lab{
		T: t, Endpoint: endpoint, Store: st, Client: datastore.NewClient(st),
		Fabric: newNS(t), Router: newNS(t), Dir: t.TempDir(),
		newNS: newNS, subnets: map[int]bool{}, nodes: map[string]*Node{},
	}
	if err := netns.SetSysctl(l.Router, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	return l
}

// Subnet returns 10.<s>.0.0/24, creating its bridge and router leg on
// first use.
func (l *Lab) Subnet(s int) netip.Prefix {
	l.T.Helper()
	p := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", s))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subnets[s] {
		return p
	}
	fh := handle(l.T, l.Fabric)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("br%d", s)}}
	if err := fh.LinkAdd(br); err != nil {
		l.T.Fatalf("create bridge %s: %v", br.Name, err)
	}
	if err := fh.LinkSetUp(br); err != nil {
		l.T.Fatal(err)
	}
	bl, err := fh.LinkByName(br.Name)
	if err != nil {
		l.T.Fatal(err)
	}
	br = bl.(*netlink.Bridge)
	routerIP := netip.PrefixFrom(p.Addr().Next(), 24)
	l.plug(fh, br, fmt.Sprintf("r%d", s), l.Router, fmt.Sprintf("eth%d", s), routerIP, netip.Addr{})
	l.subnets[s] = true
	if l.External != "" {
		l.externalRoute(p)
	}
	return p
}

// ExternalIP is the address of the lab's "external" host, and
// ExternalRouterIP the router's address on its link.
var (
	ExternalIP       = netip.MustParseAddr("203.0.113.10")
	ExternalRouterIP = netip.MustParseAddr("203.0.113.1")
)

// AddExternal creates the "external" host (reference/lab.md §2): a
// namespace with ExternalIP/24 on eth0, linked directly to the router
// (ExternalRouterIP/24), and routes via the router to the node subnets
// only. It has no route to any pod pool, and the router has none either,
// so a pod's packets get an answer only when NAT outgoing rewrote their
// source to the node's address. It returns the namespace path.
func (l *Lab) AddExternal() string {
	t := l.T
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.External != "" {
		return l.External
	}
	ext := l.newNS(t)
	f, err := netns.Open(ext)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rh := handle(t, l.Router)
	if err := rh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ext0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(f.Fd())}); err != nil {
		t.Fatalf("create external link: %v", err)
	}
	for _, side := range []struct {
		ns, name string
		addr     netip.Addr
	}{{l.Router, "ext0", ExternalRouterIP}, {ext, "eth0", ExternalIP}} {
		h := handle(t, side.ns)
		lk, err := h.LinkByName(side.name)
		if err == nil {
			err = h.AddrAdd(lk, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(side.addr, 24))})
		}
		if err == nil {
			err = h.LinkSetUp(lk)
		}
		if err != nil {
			t.Fatalf("configure %s: %v", side.name, err)
		}
	}
	l.External = ext
	for s := range l.subnets {
		l.externalRoute(netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", s)))
	}
	return ext
}

// externalRoute routes subnet p from the external host via the router.
func (l *Lab) externalRoute(p netip.Prefix) {
	h := handle(l.T, l.External)
	if err := h.RouteAdd(&netlink.Route{Dst: ipNet(p), Gw: ExternalRouterIP.AsSlice()}); err != nil {
		l.T.Fatalf("route %s on the external host: %v", p, err)
	}
}

// plug connects namespace ns to bridge br with a veth (fabric end fabName,
// inner end inName), gives the inner end addr and, if gw is valid, a
// default route via gw.
func (l *Lab) plug(fh *netlink.Handle, br *netlink.Bridge, fabName, ns, inName string, addr netip.Prefix, gw netip.Addr) {
	t := l.T
	t.Helper()
	f, err := netns.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fabName}, PeerName: inName, PeerNamespace: netlink.NsFd(f.Fd())}
	if err := fh.LinkAdd(veth); err != nil {
		t.Fatalf("create veth %s/%s: %v", fabName, inName, err)
	}
	fl, err := fh.LinkByName(fabName)
	if err == nil {
		err = fh.LinkSetMaster(fl, br)
	}
	if err == nil {
		err = fh.LinkSetUp(fl)
	}
	if err != nil {
		t.Fatalf("attach %s to %s: %v", fabName, br.Name, err)
	}
	h := handle(t, ns)
	il, err := h.LinkByName(inName)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(il, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		t.Fatalf("address %s on %s: %v", addr, inName, err)
	}
	if err := h.LinkSetUp(il); err != nil {
		t.Fatal(err)
	}
	if gw.IsValid() {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: il.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			t.Fatalf("default route via %s: %v", gw, err)
		}
	}
}

// Node is one node namespace.
type Node struct {
	Lab  *Lab
	Name string
	NS   string       // netns path
	IP   netip.Prefix // eth0's address, e.g. 10.99.0.11/24
	IP6  netip.Prefix // eth0's IPv6 address once the lab has IPv6 (AddIPv6)
	Dir  string       // nodename file, MTU file and run dir live here
	pods int
}

// NodenameFile, MTUFile and RunDir are the node's paths.
func (n *Node) NodenameFile() string { return filepath.Join(n.Dir, "nodename") }

// MTUFile is where the node's daemon writes the pod MTU.
func (n *Node) MTUFile() string { return filepath.Join(n.Dir, "mtu") }

// RunDir holds the node's control socket.
func (n *Node) RunDir() string { return filepath.Join(n.Dir, "run") }

// AddNode creates node name on subnet 10.<subnet>.0.0/24 with host number
// host (its address is 10.<subnet>.0.<host>/24), eth0 plugged into the
// subnet's bridge and a default route via the router.
func (l *Lab) AddNode(name string, subnet, host int) *Node {
	l.T.Helper()
	p := l.Subnet(subnet)
	ip4 := p.Addr().As4()
	ip4[3] = byte(host)
	addr := netip.PrefixFrom(netip.AddrFrom4(ip4), 24)
	n := &Node{Lab: l, Name: name, NS: l.newNS(l.T), IP: addr, Dir: filepath.Join(l.Dir, name)}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		l.T.Fatal(err)
	}
	br, err := handle(l.T, l.Fabric).LinkByName(fmt.Sprintf("br%d", subnet))
	if err != nil {
		l.T.Fatal(err)
	}
	l.plug(handle(l.T, l.Fabric), br.(*netlink.Bridge), "v"+name, n.NS, "eth0", addr, p.Addr().Next())
	l.mu.Lock()
	l.nodes[name] = n
	l.mu.Unlock()
	return n
}

// Handle returns a netlink handle in the node's namespace (closed at test end).
func (n *Node) Handle() *netlink.Handle { return handle(n.Lab.T, n.NS) }

var handles sync.Map // key: testing.TB+ns -> *netlink.Handle

func handle(t testing.TB, ns string) *netlink.Handle {
	key := fmt.Sprintf("%p|%s", t, ns)
	if h, ok := handles.Load(key); ok {
		return h.(*netlink.Handle)
	}
	h, err := netns.NewHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	handles.Store(key, h)
	t.Cleanup(func() { handles.Delete(key); h.Close() })
	return h
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Exec runs a command inside the namespace at ns (ip netns exec) and
// returns its combined output.
func Exec(ctx context.Context, ns string, cmd ...string) (string, error) {
	args := append([]string{"netns", "exec", filepath.Base(ns)}, cmd...)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(cmd, " "), filepath.Base(ns), err, out)
	}
	return string(out), nil
}

// Ping sends count pings from ns to dst, 1 s timeout each, and returns an
// error unless every reply came back.
func Ping(ns string, dst netip.Addr, count int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count+5)*time.Second)
	defer cancel()
	_, err := Exec(ctx, ns, "ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", "-n", "-q", dst.String())
	return err
}

// Poll calls cond until it returns nil or timeout passes (1 ms growing to
// 50 ms between calls) and returns the last error.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
