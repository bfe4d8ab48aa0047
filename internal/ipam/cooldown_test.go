package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setCooldown(t *testing.T, a *Allocator, seconds int) {
	t.Helper()
	c, err := a.GetConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.IPCooldownSeconds = seconds
	if err := a.SetConfig(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func TestCooldownEndsNeverEarly(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 900_000_000, time.UTC)
	cd := cooldown{d: 10 * time.Second, now: now}
	st := cd.stamp()
	if st == nil || !st.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("stamp = %v, want the second, truncated", st)
	}
	// Truncated by 0.9 s: the cooldown must still last 10 s from now.
	if e := cd.ends(*st); e.Before(now.Add(10 * time.Second)) {
		t.Fatalf("cooldown ends at %v, before %v", e, now.Add(10*time.Second))
	}
	precise := now // a writer with sub-second precision
	if e := cd.ends(precise); !e.Equal(now.Add(10 * time.Second)) {
		t.Fatalf("ends(%v) = %v", precise, e)
	}
	if (cooldown{now: now}).stamp() != nil {
		t.Fatal("no cooldown must write no releasedAt")
	}
}

func TestCooldownInBlockPure(t *testing.T) {
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cidr := netip.MustParsePrefix("10.1.0.0/30")
	b := newBlock(cidr, "host:n1", clock)
	h := "net.a"
	got := autoAssignOrdinals(b, cidr, 2, &h, map[string]string{"node": "n1"}, nil)
	cd := cooldown{d: 30 * time.Second, now: clock}
	per := releaseOrdinals(b, got[:1], true, cd)
	if per[h] != 1 || allocated(b, got[0]) {
		t.Fatalf("release: per-handle %v, still allocated %v", per, allocated(b, got[0]))
	}
	if _, ok := coolingAt(b, got[0]); !ok {
		t.Fatal("the released ordinal is not cooling")
	}
	for _, o := range b.Unallocated {
		if o == got[0] {
			t.Fatal("a cooling ordinal is on the free list")
		}
	}
	if n := freeCount(b, cidr, nil, cd); n != 2 {
		t.Fatalf("freeCount = %d, want 2 (cooling excluded)", n)
	}
	if blockEmpty(b) {
		t.Fatal("a block with a held address reads empty")
	}
	later := cooldown{d: cd.d, now: clock.Add(31 * time.Second)}
	if n := freeCount(b, cidr, nil, later); n != 3 {
		t.Fatalf("freeCount after the cooldown = %d, want 3", n)
	}
	if !reclaimCooled(b, later) || b.Unallocated[len(b.Unallocated)-1] != got[0] {
		t.Fatalf("reclaim: unallocated %v, want %d last", b.Unallocated, got[0])
	}
	for _, a := range b.Attributes {
		if a.Cooling() {
			t.Fatalf("attribute %+v left after reclaim", a)
		}
	}
}

// blockJSON returns the stored block containing addr.
func blockJSON(t *testing.T, s Store, cidr string) string {
	t.Helper()
	item, err := s.Get(context.Background(), api.BlockKey(netip.MustParsePrefix(cidr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(item.Value)
}

// TestCooldownOnEtcd: release with a cooldown then allocate gives another
// address; the released one is neither allocated nor leaked, cannot be
// assigned, and comes back once the (fake) clock passes the cooldown.
func TestCooldownOnEtcd(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := New(s, Options{Now: clock.Now})
	putPool(t, s, "p", "10.80.0.0/28", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	putNode(t, s, "n1", nil)
	setCooldown(t, a, 60)
	if v, _ := s.Get(ctx, api.IPAMConfigKey); !strings.Contains(string(v.Value), `"ipCooldownSeconds":60`) {
		t.Fatalf("config stored as %s", v.Value)
	}
	assign := func(h string) netip.Addr {
		t.Helper()
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: "n1", Attrs: map[string]string{"node": "n1"}})
		if err != nil {
			t.Fatal(err)
		}
		return v4[0].Addr()
	}
	first := assign("net.a")
	cidr := blockCIDRFor(first, 30).String()
	if err := a.ReleaseByHandle(ctx, "net.a"); err != nil {
		t.Fatal(err)
	}
	// The stored shape: the ordinal points at an attribute with only
	// releasedAt (second resolution), the handle is gone.
	if js := blockJSON(t, s, cidr); !strings.Contains(js, `"attributes":[{"releasedAt":"2030-01-02T03:04:05Z"}]`) {
		t.Fatalf("block after release: %s", js)
	}
	if _, err := a.IPsByHandle(ctx, "net.a"); !errors.Is(err, ErrHandleNotFound) {
		t.Fatalf("handle after release: %v", err)
	}
	if second := assign("net.b"); second == first {
		t.Fatalf("the cooling address %s was handed out again", first)
	}
	_, err := a.AssignIP(ctx, AssignIPArgs{IP: first, HandleID: "net.c", Hostname: "n1"})
	var ce *CoolingError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCoolingDown) || ce.Seconds != 60 {
		t.Fatalf("AssignIP of a cooling address: %v", err)
	}
	if _, err := a.Lookup(ctx, first); !errors.Is(err, ErrNotAllocated) || !errors.As(err, &ce) {
		t.Fatalf("Lookup of a cooling address: %v", err)
	}
	if n, err := a.ReclaimCooled(ctx); err != nil || n != 0 {
		t.Fatalf("ReclaimCooled before the cooldown = %d, %v", n, err)
	}
	r, err := a.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Cooling != 1 || r.Summary.NumAllocations != 1 || r.Allocations[first.String()] != nil {
		t.Fatalf("check: cooling %d, allocations %d, %v", r.Summary.Cooling, r.Summary.NumAllocations, r.Allocations)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
	u, err := a.Usage(ctx)
	if err != nil || u[0].InUse != 1 || u[0].Cooling != 1 {
		t.Fatalf("usage %+v %v", u, err)
	}

	clock.Add(61 * time.Second)
	if _, err := a.AssignIP(ctx, AssignIPArgs{IP: first, HandleID: "net.c", Hostname: "n1"}); err != nil {
		t.Fatalf("AssignIP after the cooldown: %v", err)
	}
	if js := blockJSON(t, s, cidr); strings.Contains(js, "releasedAt") {
		t.Fatalf("releasedAt left after reuse: %s", js)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestCooldownAllocationReclaimsInBlock: a full block whose only free
// addresses are cooled-down ones serves the next allocation from them (no
// new block), in the same write.
func TestCooldownAllocationReclaimsInBlock(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := New(s, Options{Now: clock.Now})
	putPool(t, s, "p", "10.81.0.0/30", func(p *api.IPPool) { p.Spec.BlockSize = 30 }) // one block of 4
	putNode(t, s, "n1", nil)
	setCooldown(t, a, 5)
	var held []netip.Addr
	for i := range 4 {
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h%d", i), Hostname: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, v4[0].Addr())
	}
	if _, err := a.ReleaseIPs(ctx, []ReleaseOptions{{Address: held[2]}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "x", Hostname: "n1"}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("allocation while the only free address cools: %v, want ErrPoolExhausted", err)
	}
	clock.Add(6 * time.Second)
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "x", Hostname: "n1"})
	if err != nil || v4[0].Addr() != held[2] {
		t.Fatalf("allocation after the cooldown = %v, %v; want %s", v4, err, held[2])
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestCooldownGCAndZero: ReclaimCooled frees expired addresses (deleting a
// borrowed block left empty), and cooldown 0 writes exactly what it wrote
// before the feature.
func TestCooldownGCAndZero(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := New(s, Options{Now: clock.Now})
	putPool(t, s, "p", "10.82.0.0/29", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	putNode(t, s, "n1", nil)
	setCooldown(t, a, 1)
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 2, HandleID: "h", Hostname: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	cidr := blockCIDRFor(v4[0].Addr(), 30)
	// Make the block non-affine (as after its host went away) so that GC
	// deletes it once nothing in it is held or cooling.
	if err := a.ReleaseByHandle(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	item, _ := s.Get(ctx, api.BlockKey(cidr))
	var b api.Block
	_ = json.Unmarshal(item.Value, &b)
	b.Affinity = nil
	if _, err := s.Update(ctx, item.Key, mustJSON(t, &b), item.Revision); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Second)
	if n, err := a.ReclaimCooled(ctx); err != nil || n != 2 {
		t.Fatalf("ReclaimCooled = %d, %v; want 2", n, err)
	}
	if _, err := s.Get(ctx, api.BlockKey(cidr)); err == nil {
		t.Fatal("the emptied block without affinity was not deleted")
	}

	// Cooldown 0: byte-identical to a release without the feature.
	setCooldown(t, a, 0)
	v4, _, err = a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "z", Hostname: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	zc := blockCIDRFor(v4[0].Addr(), 30)
	before := blockJSON(t, s, zc.String())
	if err := a.ReleaseByHandle(ctx, "z"); err != nil {
		t.Fatal(err)
	}
	after := blockJSON(t, s, zc.String())
	want := func() string {
		bb, c, _ := decodeBlock("k", []byte(before))
		ord, _ := addrOrdinal(c, v4[0].Addr())
		releaseOrdinals(bb, []int{ord}, false, cooldown{})
		bb.SequenceNumber++
		return string(encodeBlock(bb))
	}()
	if after != want || strings.Contains(after, "releasedAt") {
		t.Fatalf("cooldown 0 release wrote\n%s\nwant\n%s", after, want)
	}
}

// TestCooldownRealClock: with a 1 s cooldown on the real clock, the
// address is refused at first and assignable again once the cooldown has
// passed (polled, not slept for a fixed time).
func TestCooldownRealClock(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putPool(t, s, "p", "10.83.0.0/26", nil)
	putNode(t, s, "n1", nil)
	setCooldown(t, a, 1)
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h", Hostname: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ip := v4[0].Addr()
	released := time.Now()
	if err := a.ReleaseByHandle(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.AssignIP(ctx, AssignIPArgs{IP: ip, HandleID: "h2", Hostname: "n1"})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrCoolingDown) {
			t.Fatalf("AssignIP: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still cooling 10 s after a 1 s cooldown: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(released); d < time.Second {
		t.Fatalf("reassigned %v after the release, inside the 1 s cooldown", d)
	}
}

// TestCooldownConcurrentNeverReuses races 16 allocators (4 hosts) that
// allocate and release on a pool with a long cooldown: since nothing cools
// down during the test, every allocation of the whole test must get an
// address no one ever had before, and the invariants hold.
func TestCooldownConcurrentNeverReuses(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	putPool(t, s, "p", "10.84.0.0/24", func(p *api.IPPool) { p.Spec.BlockSize = 28 }) // 16 blocks of 16
	for h := range 4 {
		putNode(t, s, fmt.Sprintf("n%d", h), nil)
	}
	setCooldown(t, New(s, Options{}), 3600)
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	released := 0
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := New(s, Options{})
			host := fmt.Sprintf("n%d", w%4)
			for i := range 12 {
				h := fmt.Sprintf("w%d.%d", w, i)
				v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: host, Attrs: map[string]string{"node": host}})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", h, err)
					return
				}
				mu.Lock()
				if prev, dup := seen[v4[0].Addr()]; dup {
					errs <- fmt.Errorf("%s got %s, which %s had (released, cooling)", h, v4[0].Addr(), prev)
				}
				seen[v4[0].Addr()] = h
				mu.Unlock()
				if i%2 == 1 {
					if err := a.ReleaseByHandle(ctx, h); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					released++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 16*12 {
		t.Fatalf("%d distinct addresses, want %d", len(seen), 16*12)
	}
	r, err := New(s, Options{}).Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Cooling != released || r.Summary.NumAllocations != 16*12-released {
		t.Fatalf("check: %d cooling (want %d), %d allocated (want %d)", r.Summary.Cooling, released, r.Summary.NumAllocations, 16*12-released)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestCooldownReadsUpstreamShape loads a block and config as upstream
// master writes them (releasedAt with sub-second precision, the config's
// camel-case ipCooldownSeconds) and checks the cooling address is
// respected, then reused once the cooldown has passed.
func TestCooldownReadsUpstreamShape(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	putPool(t, s, "p", "10.85.0.0/30", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	putNode(t, s, "n1", nil)
	cfg := `{"strict_affinity":false,"auto_allocate_blocks":true,"ipCooldownSeconds":120}`
	block := `{"cidr":"10.85.0.0/30","affinity":"host:n1","allocations":[0,1,null,null],"unallocated":[2,3],` +
		`"attributes":[{"handle_id":"k8s-pod-network.a","secondary":{"node":"n1"}},{"releasedAt":"2030-01-02T03:04:05.250Z"}],` +
		`"sequenceNumber":7,"sequenceNumberForAllocation":{"0":5},"deleted":false}`
	for k, v := range map[string]string{
		api.IPAMConfigKey: cfg,
		api.BlockKey(netip.MustParsePrefix("10.85.0.0/30")):          block,
		api.AffinityKey("n1", netip.MustParsePrefix("10.85.0.0/30")): `{"state":"confirmed","deleted":false}`,
		api.HandleKey("k8s-pod-network.a"):                           `{"block":{"10.85.0.0/30":1},"deleted":false}`,
	} {
		if _, err := s.Create(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 5, 0, 0, time.UTC)}
	a := New(s, Options{Now: clock.Now})
	var got []netip.Addr
	for i := range 2 {
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("b%d", i), Hostname: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v4[0].Addr())
	}
	if got[0].String() != "10.85.0.2" || got[1].String() != "10.85.0.3" {
		t.Fatalf("allocated %v, want .2 and .3 (.1 is cooling)", got)
	}
	if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "c", Hostname: "n1"}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("allocation with only the cooling address left: %v", err)
	}
	clock.Add(2 * time.Minute) // 03:07:00 > 03:04:05.25 + 120 s
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "c", Hostname: "n1"})
	if err != nil || v4[0].Addr().String() != "10.85.0.1" {
		t.Fatalf("after upstream's cooldown: %v %v", v4, err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}
