package route

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/testutil"
)

// d0Node is the small namespace of the incremental-path tests: veth d0
// (10.99.0.11/24, up) and its peer d1, a netlink handle and a Batcher,
// all closed or removed when the test ends.
func d0Node(t testing.TB) (string, *netlink.Handle, *Batcher) {
	t.Helper()
	ns := testutil.NewNetNS(t)
	testutil.RunIn(t, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	testutil.RunIn(t, ns, "ip", "link", "set", "d0", "up")
	testutil.RunIn(t, ns, "ip", "link", "set", "d1", "up")
	testutil.RunIn(t, ns, "ip", "addr", "add", "10.99.0.11/24", "dev", "d0")
	h := testutil.Handle(t, ns)
	b, err := NewBatcher(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return ns, h, b
}
