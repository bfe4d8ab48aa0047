package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// etcdStore starts a real etcd for the test and connects to it.
func etcdStore(t testing.TB) *etcd.Store {
	t.Helper()
	e := testutil.StartEtcd(t)
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var _ Store = (*etcd.Store)(nil)

func addrs(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// expectUnchanged runs fn and fails if anything under /calico/ipam/ changed.
func expectUnchanged(t *testing.T, s Store, fn func()) {
	t.Helper()
	before := dumpPrefix(t, s, api.IPAMPrefix)
	fn()
	if after := dumpPrefix(t, s, api.IPAMPrefix); after != before {
		t.Fatalf("the datastore changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestAllocateAndReleaseOnEtcd(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	putPool(t, s, "pool1", "10.244.0.0/16", nil)
	putNode(t, s, "node1", nil)
	a := New(s, Options{})
	var got []string
	for i := range 70 {
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("net.c%d", i), Hostname: "node1", Attrs: map[string]string{"node": "node1"}})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v4[0].String())
	}
	// The first block is upstream's choice for node1, filled in order;
	// the 65th address comes from the next block of the walk.
	if got[0] != "10.244.166.128/26" || got[63] != "10.244.166.191/26" || got[64] != "10.244.166.192/26" {
		t.Fatalf("allocations %v", got[:66])
	}
	if n := len(allAllocated(t, s)); n != 70 {
		t.Fatalf("%d allocated, want 70", n)
	}
	ips, err := a.IPsByHandle(ctx, "net.c5")
	if err != nil || len(ips) != 1 || ips[0].String() != "10.244.166.133" {
		t.Fatalf("IPsByHandle = %v %v", ips, err)
	}
	if _, err := a.IPsByHandle(ctx, "net.nope"); !errors.Is(err, ErrHandleNotFound) {
		t.Fatalf("IPsByHandle(missing) = %v, want ErrHandleNotFound", err)
	}
	hs, err := a.HandlesOnHost(ctx, "node1", "net.c6")
	if err != nil || len(hs) != 11 || hs[0] != "net.c6" || hs[10] != "net.c69" {
		t.Fatalf("HandlesOnHost = %v %v", hs, err)
	}
	for i := range 70 {
		if err := a.ReleaseByHandle(ctx, fmt.Sprintf("net.c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ReleaseByHandle(ctx, "net.c0"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if n := len(allAllocated(t, s)); n != 0 {
		t.Fatalf("%d still allocated", n)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
	// Both blocks stay, affine and confirmed, as upstream keeps them.
	items, _, _ := s.List(ctx, api.HostAffinityPrefix("node1", 4))
	if len(items) != 2 {
		t.Fatalf("%d affinities, want 2", len(items))
	}
}

func TestErrorsLeaveDatastoreUnchanged(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "node1", map[string]string{"zone": "a"})

	// No pool at all.
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h0", Hostname: "node1"})
		if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), "there is no IPv4 IP pool") {
			t.Fatalf("no pool: %v", err)
		}
	})

	// Pool exhausted: a /30 pool with /30 blocks has 4 addresses.
	putPool(t, s, "tiny", "10.9.0.0/30", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	for i := range 4 {
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h%d", i), Hostname: "node1"}); err != nil {
			t.Fatal(err)
		}
	}
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h4", Hostname: "node1"})
		if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), `"tiny" (10.9.0.0/30)`) {
			t.Fatalf("exhausted: %v", err)
		}
	})
	// All-or-nothing: asking for 2 when 1 is free allocates nothing.
	if err := a.ReleaseByHandle(ctx, "h3"); err != nil {
		t.Fatal(err)
	}
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 2, HandleID: "h5", Hostname: "node1"})
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("partial: %v", err)
		}
	})

	// Pool disabled between two allocations.
	putPool(t, s, "tiny", "10.9.0.0/30", func(p *api.IPPool) { p.Spec.BlockSize = 30; p.Spec.Disabled = true })
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h6", Hostname: "node1"})
		if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), "is disabled") {
			t.Fatalf("disabled: %v", err)
		}
	})

	// Node selector that excludes the node.
	putPool(t, s, "zoned", "10.10.0.0/16", func(p *api.IPPool) { p.Spec.NodeSelector = "zone == 'b'" })
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h7", Hostname: "node1"})
		if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), `nodeSelector "zone == 'b'"`) {
			t.Fatalf("selector: %v", err)
		}
	})

	// A requested pool that does not exist: upstream's wording
	// "(<pool>) does not exist", which scripts match.
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h8", Hostname: "node1", IPv4Pools: []string{"192.169.1.0/24"}})
		if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), `(192.169.1.0/24) does not exist`) {
			t.Fatalf("requested: %v", err)
		}
	})

	// A node that does not exist.
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h9", Hostname: "ghost"})
		if !errors.Is(err, ErrNodeNotFound) {
			t.Fatalf("ghost: %v", err)
		}
	})

	// Strict affinity and the block limit reached: pool with /30 blocks,
	// limit 1 block, the host's block full.
	putPool(t, s, "zoned", "10.10.0.0/16", func(p *api.IPPool) { p.Spec.NodeSelector = "zone == 'a'"; p.Spec.BlockSize = 30 })
	if err := a.SetConfig(ctx, api.IPAMConfig{StrictAffinity: true, AutoAllocateBlocks: true, MaxBlocksPerHost: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("z%d", i), Hostname: "node1"}); err != nil {
			t.Fatal(err)
		}
	}
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "z4", Hostname: "node1"})
		if !errors.Is(err, ErrBlockLimit) || !strings.Contains(err.Error(), "cannot allocate new block due to per host block limit") {
			t.Fatalf("block limit: %v", err)
		}
	})
	// AssignIP of an allocated address.
	expectUnchanged(t, s, func() {
		_, err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.9.0.0"), HandleID: "x", Hostname: "node1"})
		if !errors.Is(err, ErrNoPool) {
			t.Fatalf("AssignIP in disabled pool: %v", err)
		}
	})
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func TestStrictAffinityForbidsBorrowing(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", nil)
	putNode(t, s, "n2", nil)
	putPool(t, s, "p", "10.20.0.0/29", func(p *api.IPPool) { p.Spec.BlockSize = 30 }) // two blocks of 4
	// n1 takes both blocks' worth: its own block, then claims the second.
	for i := range 8 {
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("a%d", i), Hostname: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ReleaseByHandle(ctx, "a0"); err != nil { // one free address in n1's first block
		t.Fatal(err)
	}
	if err := a.SetConfig(ctx, api.IPAMConfig{StrictAffinity: true, AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "b0", Hostname: "n2"})
		if !errors.Is(err, ErrStrictAffinity) {
			t.Fatalf("strict: %v", err)
		}
	})
	// Without strict affinity n2 borrows the free address from n1's block.
	if err := a.SetConfig(ctx, api.IPAMConfig{AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "b0", Hostname: "n2", Attrs: map[string]string{"node": "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.Lookup(ctx, v4[0].Addr())
	if err != nil || *info.HandleID != "b0" {
		t.Fatalf("lookup %v %v", info, err)
	}
	borrowed, _, err := a.Borrowed(ctx)
	if err != nil || len(borrowed) != 1 || borrowed[0].BorrowingNode != "n2" || borrowed[0].BlockOwner != "n1" {
		t.Fatalf("borrowed %+v %v", borrowed, err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func TestAssignIPAndReleaseIPs(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", nil)
	putPool(t, s, "p", "10.30.0.0/24", nil)
	ip := netip.MustParseAddr("10.30.0.77")
	got, err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "h1", Hostname: "n1", Attrs: map[string]string{"node": "n1"}})
	if err != nil || got.String() != "10.30.0.77/26" {
		t.Fatalf("AssignIP = %v %v", got, err)
	}
	// Its block was claimed for n1.
	if _, err := s.Get(ctx, api.AffinityKey("n1", netip.MustParsePrefix("10.30.0.64/26"))); err != nil {
		t.Fatalf("affinity: %v", err)
	}
	expectUnchanged(t, s, func() {
		if _, err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "h2", Hostname: "n1"}); !errors.Is(err, ErrAlreadyAllocated) {
			t.Fatalf("twice: %v", err)
		}
		if _, err := a.AssignIP(ctx, AssignIPArgs{IP: netip.MustParseAddr("10.99.0.1"), HandleID: "h2", Hostname: "n1"}); !errors.Is(err, ErrNoPool) {
			t.Fatalf("outside pools: %v", err)
		}
	})
	info, err := a.Lookup(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	// A release with a stale sequence number is refused, the address stays.
	stale := info.SequenceNumber + 1
	expectUnchanged(t, s, func() {
		na, err := a.ReleaseIPs(ctx, []ReleaseOptions{{Address: ip, SequenceNumber: &stale}})
		var mm *MismatchError
		if !errors.As(err, &mm) || len(mm.Addresses) != 1 || len(na) != 0 {
			t.Fatalf("stale release: %v %v", na, err)
		}
		if _, err := a.ReleaseIPs(ctx, []ReleaseOptions{{Address: ip, HandleID: "other"}}); !errors.Is(err, ErrReleaseMismatch) {
			t.Fatalf("wrong handle: %v", err)
		}
	})
	na, err := a.ReleaseIPs(ctx, []ReleaseOptions{{Address: ip, HandleID: "h1", SequenceNumber: &info.SequenceNumber}, {Address: netip.MustParseAddr("10.30.0.5")}})
	if err != nil || len(na) != 1 || na[0].String() != "10.30.0.5" {
		t.Fatalf("release: %v %v", na, err)
	}
	if _, err := a.Lookup(ctx, ip); !errors.Is(err, ErrNotAllocated) {
		t.Fatalf("after release: %v", err)
	}
	if _, err := s.Get(ctx, api.HandleKey("h1")); err == nil {
		t.Fatal("handle h1 survived")
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func TestDualStackAllOrNothing(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", nil)
	putPool(t, s, "v4", "10.40.0.0/24", nil)
	// No IPv6 pool: the IPv4 address must not stay allocated.
	expectUnchanged(t, s, func() {
		_, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Num6: 1, HandleID: "d", Hostname: "n1"})
		if !errors.Is(err, ErrNoPool) {
			t.Fatalf("dual stack without v6 pool: %v", err)
		}
	})
	putPool(t, s, "v6", "fd00:40::/120", nil)
	v4, v6, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Num6: 1, HandleID: "d", Hostname: "n1"})
	if err != nil || len(v4) != 1 || len(v6) != 1 || v6[0].Bits() != 122 {
		t.Fatalf("dual stack: %v %v %v", v4, v6, err)
	}
	item, _ := s.Get(ctx, api.HandleKey("d"))
	if !strings.Contains(string(item.Value), v4[0].Masked().String()) || !strings.Contains(string(item.Value), v6[0].Masked().String()) {
		t.Fatalf("handle %s", item.Value)
	}
	if err := a.ReleaseByHandle(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if n := len(allAllocated(t, s)); n != 0 {
		t.Fatalf("%d left", n)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func TestPoolSelection(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", map[string]string{"rack": "r1"})
	manual := api.AssignmentManual
	putPool(t, s, "a-manual", "10.50.0.0/24", func(p *api.IPPool) { p.Spec.AssignmentMode = &manual })
	putPool(t, s, "b-other-rack", "10.51.0.0/24", func(p *api.IPPool) { p.Spec.NodeSelector = "rack == 'r2'" })
	putPool(t, s, "c-tunnel-only", "10.52.0.0/24", func(p *api.IPPool) { p.Spec.AllowedUses = []api.IPPoolAllowedUse{api.AllowedUseTunnel} })
	putPool(t, s, "d-mine", "10.53.0.0/24", func(p *api.IPPool) { p.Spec.NodeSelector = "rack == 'r1'" })
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "w", Hostname: "n1"})
	if err != nil || !netip.MustParsePrefix("10.53.0.0/24").Contains(v4[0].Addr()) {
		t.Fatalf("workload from %v %v, want d-mine", v4, err)
	}
	// Requested by name (Manual and selectors ignored) and by CIDR.
	v4, _, err = a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "m", Hostname: "n1", IPv4Pools: []string{"a-manual"}})
	if err != nil || !netip.MustParsePrefix("10.50.0.0/24").Contains(v4[0].Addr()) {
		t.Fatalf("manual pool: %v %v", v4, err)
	}
	v4, _, err = a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "o", Hostname: "n1", IPv4Pools: []string{"10.51.0.0/24"}})
	if err != nil || !netip.MustParsePrefix("10.51.0.0/24").Contains(v4[0].Addr()) {
		t.Fatalf("other rack by CIDR: %v %v", v4, err)
	}
	// Tunnel addresses come from pools allowing Tunnel, and are idempotent.
	tun, err := a.EnsureTunnelAddress(ctx, "n1", TunnelVXLAN, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.EnsureTunnelAddress(ctx, "n1", TunnelVXLAN, nil)
	if err != nil || again != tun {
		t.Fatalf("tunnel address not idempotent: %v then %v (%v)", tun, again, err)
	}
	info, _ := a.Lookup(ctx, tun)
	if *info.HandleID != "vxlan-tunnel-addr-n1" || info.Attrs["type"] != "vxlanTunnelAddress" || info.Attrs["node"] != "n1" {
		t.Fatalf("tunnel allocation %+v", info)
	}
	// Asking for another pool moves it.
	moved, err := a.EnsureTunnelAddress(ctx, "n1", TunnelVXLAN, []string{"c-tunnel-only"})
	if err != nil || !netip.MustParsePrefix("10.52.0.0/24").Contains(moved) {
		t.Fatalf("moved tunnel address %v %v", moved, err)
	}
	if _, err := a.Lookup(ctx, tun); !errors.Is(err, ErrNotAllocated) {
		t.Fatalf("old tunnel address still allocated: %v", err)
	}
	if err := a.ReleaseTunnelAddress(ctx, "n1", TunnelVXLAN); err != nil {
		t.Fatal(err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func TestConfigRules(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	c, err := a.GetConfig(ctx)
	if err != nil || c != api.DefaultIPAMConfig() {
		t.Fatalf("default config %+v %v", c, err)
	}
	expectUnchanged(t, s, func() {
		if err := a.SetConfig(ctx, api.IPAMConfig{}); err == nil {
			t.Fatal("both false accepted")
		}
		if err := a.SetConfig(ctx, api.IPAMConfig{AutoAllocateBlocks: true, MaxBlocksPerHost: 3}); err == nil || !strings.Contains(err.Error(), "requires strictAffinity") {
			t.Fatalf("max blocks without strict: %v", err)
		}
	})
	want := api.IPAMConfig{StrictAffinity: true, AutoAllocateBlocks: true, MaxBlocksPerHost: 3, KubeVirtVMAddressPersistence: "Enabled"}
	if err := a.SetConfig(ctx, want); err != nil {
		t.Fatal(err)
	}
	item, _ := s.Get(ctx, api.IPAMConfigKey)
	if string(item.Value) != `{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":3,"kubeVirtVMAddressPersistence":"Enabled"}` {
		t.Fatalf("stored %s", item.Value)
	}
	if c, _ := a.GetConfig(ctx); c != want {
		t.Fatalf("read back %+v", c)
	}
}

func TestAffinityReleaseAndReclaim(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	a := New(s, Options{Now: func() time.Time { return clock() }})
	putNode(t, s, "n1", nil)
	putNode(t, s, "n2", nil)
	putPool(t, s, "p", "10.60.0.0/29", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	for i := range 5 { // n1 claims both blocks
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("a%d", i), Hostname: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	// Releasing a non-empty block's affinity keeps its addresses, drops the
	// affinity from the block; an empty block is deleted with its affinity.
	if err := a.ReleaseByHandle(ctx, "a4"); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseHostAffinities(ctx, "n1", true); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("mustBeEmpty on a non-empty block: %v", err)
	}
	if n := len(allAllocated(t, s)); n != 4 {
		t.Fatalf("%d allocated", n)
	}
	items, _, _ := s.List(ctx, api.BlockPrefix(4))
	if len(items) != 1 {
		t.Fatalf("%d blocks left, want 1 (the emptied one deleted)", len(items))
	}
	if err := a.ReleaseHostAffinities(ctx, "n1", false); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := s.List(ctx, api.IPAMHostPrefix); len(items) != 0 {
		t.Fatalf("affinities left: %d", len(items))
	}
	b, _, _ := decodeBlock(items[0].Key, mustGet(t, s, items[0].Key))
	if b.Affinity != nil || b.AffinityClaimTime != "" {
		t.Fatalf("block kept its affinity: %+v", b.Affinity)
	}
	// Releasing its last addresses deletes the unaffine block.
	for i := range 4 {
		if err := a.ReleaseByHandle(ctx, fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if items, _, _ := s.List(ctx, api.BlockPrefix(4)); len(items) != 0 {
		t.Fatalf("unaffine empty block not deleted")
	}

	// Reclaim: n1 claims both blocks and empties them; n2 can take one
	// only once they are older than a minute.
	for i := range 5 {
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("r%d", i), Hostname: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := a.ReleaseByHandle(ctx, fmt.Sprintf("r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetConfig(ctx, api.IPAMConfig{StrictAffinity: true, AutoAllocateBlocks: true}); err != nil {
		t.Fatal(err)
	}
	expectUnchanged(t, s, func() {
		if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "n2a", Hostname: "n2"}); !errors.Is(err, ErrStrictAffinity) {
			t.Fatalf("fresh blocks reclaimed: %v", err)
		}
	})
	now = now.Add(2 * time.Minute)
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "n2a", Hostname: "n2"})
	if err != nil {
		t.Fatalf("reclaim: %v", err)
	}
	info, _ := a.Lookup(ctx, v4[0].Addr())
	b, _, _ = decodeBlock("", mustGet(t, s, api.BlockKey(info.Block)))
	if !isAffineTo(b, "n2") {
		t.Fatalf("reclaimed block affinity %v", *b.Affinity)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
	// Pool deletion releases every host's affinities in the pool.
	if err := a.ReleasePoolAffinities(ctx, netip.MustParsePrefix("10.60.0.0/29")); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := s.List(ctx, api.IPAMHostPrefix); len(items) != 0 {
		t.Fatalf("%d affinities left after ReleasePoolAffinities", len(items))
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

func mustGet(t testing.TB, s Store, key string) []byte {
	t.Helper()
	item, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return item.Value
}

// TestConcurrentAllocatorsInProcess races 4 hosts x 4 goroutines on a small
// pool (so blocks are claimed, contended and borrowed) and checks the
// invariants afterwards.
func TestConcurrentAllocatorsInProcess(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	putPool(t, s, "p", "10.70.0.0/25", func(p *api.IPPool) { p.Spec.BlockSize = 28 }) // 8 blocks of 16
	for h := range 4 {
		putNode(t, s, fmt.Sprintf("n%d", h), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := New(s, Options{})
			host := fmt.Sprintf("n%d", w%4)
			for i := range 8 {
				h := fmt.Sprintf("w%d.%d", w, i)
				if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: host, Attrs: map[string]string{"node": host}}); err != nil {
					errs <- fmt.Errorf("%s: %w", h, err)
					return
				}
				if i%3 == 2 {
					if err := a.ReleaseByHandle(ctx, h); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := allAllocated(t, s)
	if len(got) != 16*8-16*2 {
		t.Fatalf("%d allocated, want %d", len(got), 16*8-16*2)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestRecoveryFromInterruptedClaims sets up what a process killed in the
// middle of a claim (by us or by upstream) leaves behind, and checks the
// next allocation repairs it.
func TestRecoveryFromInterruptedClaims(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", nil)
	putNode(t, s, "n2", nil)
	putPool(t, s, "p", "10.90.0.0/24", nil)
	first := newBlockOrder(netip.MustParsePrefix("10.90.0.0/24"), 26, "n1", time.Now).at(bigZero())

	// 1. A pending affinity without its block (killed after step one of
	// the claim): the next allocation on n1 finishes the claim.
	if _, err := s.Create(ctx, api.AffinityKey("n1", first), encodeAffinity(api.AffinityPending)); err != nil {
		t.Fatal(err)
	}
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "a", Hostname: "n1"})
	if err != nil || !first.Contains(v4[0].Addr()) {
		t.Fatalf("after a pending claim: %v %v, want an address of %s", v4, err, first)
	}
	if got := string(mustGet(t, s, api.AffinityKey("n1", first))); got != `{"state":"confirmed","deleted":false}` {
		t.Fatalf("affinity %s", got)
	}

	// 2. An upstream-style half claim: block written, affinity still
	// pending (killed before the confirm). Confirmed on next use.
	second := newBlockOrder(netip.MustParsePrefix("10.90.0.0/24"), 26, "n2", time.Now).at(bigZero())
	b := newBlock(second, api.HostAffinity("n2"), time.Now())
	if _, err := s.Create(ctx, api.BlockKey(second), encodeBlock(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, api.AffinityKey("n2", second), encodeAffinity(api.AffinityPending)); err != nil {
		t.Fatal(err)
	}
	if v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "b", Hostname: "n2"}); err != nil || !second.Contains(v4[0].Addr()) {
		t.Fatalf("after a half claim: %v %v", v4, err)
	}
	if got := string(mustGet(t, s, api.AffinityKey("n2", second))); got != `{"state":"confirmed","deleted":false}` {
		t.Fatalf("affinity %s", got)
	}

	// 3. A stale affinity: n1 has a key for n2's block. It is deleted and
	// n1 does not allocate from that block as its own.
	if _, err := s.Create(ctx, api.AffinityKey("n1", second), encodeAffinity(api.AffinityConfirmed)); err != nil {
		t.Fatal(err)
	}
	if bad := invariants(t, s); len(bad) == 0 {
		t.Fatal("the check did not notice the stale affinity")
	}
	if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "c", Hostname: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, api.AffinityKey("n1", second)); err == nil {
		t.Fatal("stale affinity not deleted")
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}

	// 4. An upstream crash between its handle increment and its block
	// write leaves a handle that over-counts: release fixes the count.
	if _, err := s.Create(ctx, api.HandleKey("ghost"), []byte(`{"block":{"`+first.String()+`":2},"deleted":false}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseByHandle(ctx, "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, api.HandleKey("ghost")); err == nil {
		t.Fatal("over-counting handle survived its release")
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestMultiAddressRequestSpansBlocks: one request for more addresses than
// a block holds is committed as one transaction across blocks.
func TestMultiAddressRequestSpansBlocks(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putNode(t, s, "n1", nil)
	putPool(t, s, "p", "10.91.0.0/24", func(p *api.IPPool) { p.Spec.BlockSize = 28 })
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 40, HandleID: "many", Hostname: "n1"})
	if err != nil || len(v4) != 40 {
		t.Fatalf("got %d addresses, %v", len(v4), err)
	}
	h := string(mustGet(t, s, api.HandleKey("many")))
	if strings.Count(h, "/28") != 3 {
		t.Fatalf("handle %s, want counts in 3 blocks", h)
	}
	ips, err := a.IPsByHandle(ctx, "many")
	if err != nil || len(ips) != 40 {
		t.Fatalf("IPsByHandle: %d %v", len(ips), err)
	}
	// A request the pool cannot satisfy writes no allocation.
	before := len(allAllocated(t, s))
	if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 300, HandleID: "toomany", Hostname: "n1", MaxBlocksPerHost: 100}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("too many: %v", err)
	}
	if after := len(allAllocated(t, s)); after != before {
		t.Fatalf("a failed request allocated %d addresses", after-before)
	}
	if err := a.ReleaseByHandle(ctx, "many"); err != nil {
		t.Fatal(err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}
