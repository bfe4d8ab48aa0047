package e2e_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/testutil"
)

// VXLAN peer filtering (Felix's all-vxlan-net): each node's filter admits
// exactly the other nodes' underlay addresses; VXLAN-port packets from the
// external host (no VTEP) are dropped and counted on n1, while pods on
// different nodes keep talking over vxlan.calico without a single drop.
func (c *cluster) testVXLANPeerFilter(t *testing.T) {
	for _, n := range c.nodes {
		var peers []netip.Addr
		for _, o := range c.nodes {
			if o != n {
				peers = append(peers, o.IP.Addr())
			}
		}
		slices.SortFunc(peers, netip.Addr.Compare)
		others := make([]string, len(peers))
		for i, a := range peers {
			others[i] = a.String()
		}
		want := fmt.Sprintf("set %s { type ipv4_addr; elements = { %s } }", nft.SetVXLANPeersV4, strings.Join(others, ", "))
		testutil.Eventually(t, convergeTimeout, func() error {
			dump, err := dumpIn(n.NS, nft.VXLANFilterTableName)
			if err != nil {
				return err
			}
			if !strings.Contains(dump, want) {
				return fmt.Errorf("%s's VXLAN filter:\n%s\nlacks %q", n.Name, dump, want)
			}
			return nil
		})
	}
	before := vxlanDropped(t, c.n1)
	const forged = 5
	for range forged {
		if err := netns.Do(c.lab.External, func() error {
			conn, err := net.Dial("udp", netip.AddrPortFrom(c.n1.IP.Addr(), nft.DefaultVXLANPort).String())
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write(make([]byte, 50)) // a VXLAN header and then some
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if d := vxlanDropped(t, c.n1) - before; d != forged {
			return fmt.Errorf("n1 dropped %d VXLAN packets from the external host, want %d", d, forged)
		}
		return nil
	})
	pods := c.addPods(t, "f1", "always", c.nodes...)
	pingMatrix(t, pods)
	if d := vxlanDropped(t, c.n1) - before; d != forged {
		t.Errorf("n1 dropped %d VXLAN packets after the pod pings, want still %d (a known peer was dropped)", d, forged)
	}
	for _, p := range pods {
		p.Node.DelCNIPod(p)
	}
}

// dumpIn renders our nft table name in namespace ns.
func dumpIn(ns, name string) (string, error) {
	conn, closeConn, err := netns.NewNftConn(ns)
	if err != nil {
		return "", err
	}
	defer closeConn()
	return nft.Dump(conn, name)
}

// vxlanDropped reads n's VXLAN filter drop counter.
func vxlanDropped(t testing.TB, n *labtest.Node) uint64 {
	t.Helper()
	conn, closeConn, err := netns.NewNftConn(n.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	v, err := nft.VXLANDropped(conn, nft.VXLANFilterTableName)
	if err != nil {
		t.Fatal(err)
	}
	return v.Packets
}
