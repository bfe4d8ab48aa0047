package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/testutil"
)

// kernelRules renders the rules of namespace ns, read over netlink: the
// policy routing rules of both families, and every nft table (inet tables
// in full, without counter values; others by name).
func kernelRules(t testing.TB, ns string) string {
	t.Helper()
	var b strings.Builder
	rules, err := testutil.Handle(t, ns).RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "rule %s\n", r)
	}
	conn, closeConn, err := netns.NewNftConn(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Family != nftables.TableFamilyINet {
			fmt.Fprintf(&b, "table family %d %s\n", tb.Family, tb.Name)
			continue
		}
		d, err := nft.Dump(conn, tb.Name)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(d)
	}
	return b.String()
}
