package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// Truth is what every node should have, read from the datastore: each
// block's affine node, and each node's underlay and tunnel address.
type Truth struct {
	Blocks map[netip.Prefix]string // block -> affine node
	Nodes  map[string]NodeFacts
}

// NodeFacts are one Node's addresses.
type NodeFacts struct {
	Addr     netip.Addr // underlay
	TunnelIP netip.Addr // VXLAN tunnel address; invalid until allocated
}

// ReadTruth lists blocks and Nodes.
func (f *Fleet) ReadTruth(ctx context.Context) (*Truth, error) {
	items, _, err := f.Store.List(ctx, api.IPAMBlockPrefix)
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	t := &Truth{Blocks: map[netip.Prefix]string{}, Nodes: map[string]NodeFacts{}}
	for _, it := range items {
		cidr, err := api.ParseBlockKey(it.Key)
		if err != nil {
			continue
		}
		var b api.Block
		if err := json.Unmarshal(it.Value, &b); err != nil {
			return nil, fmt.Errorf("decode block %s: %w", cidr, err)
		}
		if b.Affinity != nil && strings.HasPrefix(*b.Affinity, "host:") && !b.Deleted {
			t.Blocks[cidr] = strings.TrimPrefix(*b.Affinity, "host:")
		}
	}
	nodes, _, err := f.Client.List(ctx, api.KindNode, "")
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for _, r := range nodes {
		n := r.(*api.Node)
		var nf NodeFacts
		if n.Spec.BGP != nil {
			if p, err := netip.ParsePrefix(n.Spec.BGP.IPv4Address); err == nil {
				nf.Addr = p.Addr()
			}
		}
		nf.TunnelIP, _ = netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
		t.Nodes[n.Name] = nf
	}
	return t, nil
}

// Complete reports whether every one of want nodes has a tunnel address
// and a block.
func (t *Truth) Complete(want int) bool {
	if len(t.Nodes) < want {
		return false
	}
	withBlock := map[string]bool{}
	for _, n := range t.Blocks {
		withBlock[n] = true
	}
	for name, n := range t.Nodes {
		if !n.TunnelIP.IsValid() || !withBlock[name] {
			return false
		}
	}
	return true
}

// Converged reports whether n has a route to every other node's blocks
// and every other node's VTEP, and when the last of them appeared.
func (t *Truth) Converged(n *Node) (time.Time, bool) {
	k := n.Kernel
	sz := k.Sizes()
	if sz.Neigh < len(t.Nodes)-1 || sz.Routes < len(t.Blocks) {
		return time.Time{}, false
	}
	var last time.Time
	for b, owner := range t.Blocks {
		if owner == n.Name {
			continue
		}
		_, at, ok := k.Route(b)
		if !ok {
			return time.Time{}, false
		}
		last = later(last, at)
	}
	for name, nf := range t.Nodes {
		if name == n.Name {
			continue
		}
		v, at, ok := k.VTEP(nf.TunnelIP)
		if !ok || v.NodeIP != nf.Addr {
			return time.Time{}, false
		}
		last = later(last, at)
	}
	return last, true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Check is a per-node condition: whether it holds, and since when.
type Check func(n *Node) (time.Time, bool)

// WaitAll polls check on every node until it holds on all or ctx ends,
// and returns for each node the time since t0 at which it began to hold
// (the kernel's own timestamps, so the poll interval does not blur them).
func WaitAll(ctx context.Context, nodes []*Node, t0 time.Time, check Check) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(nodes))
	todo := slices.Clone(nodes)
	poll := 20*time.Millisecond + time.Duration(len(nodes))*50*time.Microsecond
	for {
		rest := todo[:0]
		for _, n := range todo {
			if at, ok := check(n); ok {
				out = append(out, max(at.Sub(t0), 0))
			} else {
				rest = append(rest, n)
			}
		}
		todo = rest
		if len(todo) == 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			names := make([]string, 0, 3)
			for _, n := range todo[:min(3, len(todo))] {
				names = append(names, n.Name)
			}
			return out, fmt.Errorf("%d of %d nodes not there (e.g. %s): %w", len(todo), len(nodes), strings.Join(names, ", "), ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Dist is a distribution's summary.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize sorts ds and summarizes it.
func Summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		i := int(float64(len(ds)-1)*p + 0.5)
		return ds[i]
	}
	return Dist{N: len(ds), P50: q(0.50), P99: q(0.99), Max: ds[len(ds)-1]}
}

func (d Dist) String() string {
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", ms(d.P50), ms(d.P99), ms(d.Max), d.N)
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// ProcStats are a process's memory and CPU.
type ProcStats struct {
	RSS       int64         // bytes
	CPU       time.Duration // user + system since start
	HeapInuse uint64        // Go heap in use after a GC (this process only)
}

// SelfStats reads this process's RSS and CPU; with gc it also collects
// garbage and returns it to the OS first, and reads the heap in use.
func SelfStats(gc bool) ProcStats {
	var s ProcStats
	if gc {
		// Collect and return freed memory to the OS, so that the RSS is
		// live data (the baseline would otherwise keep an earlier size's).
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.HeapInuse = m.HeapInuse
	}
	s.RSS = RSS(os.Getpid())
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// RSS is a process's resident set in bytes (0 if unknown).
func RSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ProcCPU is a process's user + system CPU time (0 if unknown).
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
