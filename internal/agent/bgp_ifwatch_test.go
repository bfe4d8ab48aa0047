package agent

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedBGPIfaceWatch: while a BGPFilter rule matches an
// interface, the BGP goroutine's scan subscribes to the namespace's
// address and link changes: a new address on an up link and a link
// going down arrive as events, and the rescan they cause sees them. When
// no rule needs interfaces any more, the subscription ends.
func TestPrivilegedBGPIfaceWatch(t *testing.T) {
	ns := testutil.NewNetNS(t)
	h := testutil.Handle(t, ns)
	a := &Agent{cfg: Config{NodeName: "n1", NetNS: ns}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), model: model(plainPool())}
	a.bgp = &bgpAgent{kick: make(chan struct{}, 1)}
	a.model.BGP.Filters = map[string]*api.BGPFilterSpec{"f": {ExportV4: []api.BGPFilterRule{{Interface: "test*", Action: api.BGPFilterAccept}}}}
	defer a.closeIfaces()

	a.rescanIfaces()
	if !a.ifacesWatched() {
		t.Fatal("no subscription while an interface rule is in use")
	}
	if len(a.bgp.ifaces.connected) != 0 {
		t.Fatalf("connected routes in an empty namespace: %+v", a.bgp.ifaces.connected)
	}
	// waitScan waits for an event and rescans until the connected routes
	// are want (events for earlier steps may come first).
	waitScan := func(step string, want []bgp.IfaceRoute) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !slices.Equal(a.bgp.ifaces.connected, want) {
			select {
			case <-a.ifaceEvents():
				a.rescanIfaces()
			case <-deadline:
				t.Fatalf("%s: no event brought the connected routes to %+v (have %+v)", step, want, a.bgp.ifaces.connected)
			}
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name = "test0" // a veth: this kernel has no dummy links
	d := &netlink.Veth{LinkAttrs: la, PeerName: "test1"}
	if err := h.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	addr, err := netlink.ParseAddr("198.51.100.1/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(d, addr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"test1", "test0"} {
		l, err := h.LinkByName(name)
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitScan("address on an up link", []bgp.IfaceRoute{{Prefix: pfx("198.51.100.0/24"), Interface: "test0", Connected: true}})
	if err := h.LinkSetDown(d); err != nil {
		t.Fatal(err)
	}
	waitScan("link down", []bgp.IfaceRoute{})

	w := a.bgp.ifaces.watch
	a.mu.Lock()
	a.model.BGP.Filters = nil
	a.mu.Unlock()
	a.rescanIfaces()
	if a.ifacesWatched() || a.bgp.ifaces.connected != nil {
		t.Fatalf("still watched (%v) or scanned (%+v) without an interface rule", a.ifacesWatched(), a.bgp.ifaces.connected)
	}
	select {
	case <-w.done:
	default:
		t.Error("the subscription was not closed")
	}
}
