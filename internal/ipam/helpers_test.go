package ipam

import (
	"bufio"
	"context"
	"encoding/json"
	"math/big"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore/memory"
	"github.com/onecalico/calico/internal/kv"
)

var _ Store = (*memory.Store)(nil)

// dumpKV is one key/value of an upstream etcd dump.
type dumpKV struct{ key, value string }

// readDump parses a testdata file in etcdctl's "key line, value line" form
// (or, for section 2b, "rev=N PUT key ..." followed by an indented value).
func readDump(t testing.TB, name string) []dumpKV {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	var out []dumpKV
	key := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "rev="):
			key = strings.Fields(line)[2]
		case key == "" && strings.HasPrefix(line, "/calico/"):
			key = line
		case key != "":
			out = append(out, dumpKV{key, strings.TrimSpace(line)})
			key = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpValue returns the n-th value (0-based) stored under key in a dump.
func dumpValue(t testing.TB, kvs []dumpKV, key string, n int) string {
	t.Helper()
	for _, e := range kvs {
		if e.key == key {
			if n == 0 {
				return e.value
			}
			n--
		}
	}
	t.Fatalf("no value %d for %s", n, key)
	return ""
}

// load writes dump entries into a store.
func load(t testing.TB, s Store, kvs []dumpKV) {
	t.Helper()
	for _, e := range kvs {
		if _, err := s.Create(context.Background(), e.key, []byte(e.value)); err != nil {
			t.Fatalf("load %s: %v", e.key, err)
		}
	}
}

// dumpPrefix returns every key under prefix, sorted, as "key=value" lines.
func dumpPrefix(t testing.TB, s Store, prefix string) string {
	t.Helper()
	items, _, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it.Key + "=" + string(it.Value) + "\n")
	}
	return b.String()
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putPool stores an IPPool with upstream's defaults.
func putPool(t testing.TB, s Store, name, cidr string, mod func(*api.IPPool)) {
	t.Helper()
	p := api.NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	if mod != nil {
		mod(p)
	}
	api.Default(p)
	key := kindInfo(api.KindIPPool).Key("", name)
	ctx := context.Background()
	if item, err := s.Get(ctx, key); err == nil {
		if _, err := s.Update(ctx, key, mustJSON(t, p), item.Revision); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := s.Create(ctx, key, mustJSON(t, p)); err != nil {
		t.Fatal(err)
	}
}

// putNode stores a Node with labels.
func putNode(t testing.TB, s Store, name string, labels map[string]string) {
	t.Helper()
	n := api.NewNode()
	n.Name = name
	n.Labels = labels
	key := nodeKey(name)
	ctx := context.Background()
	if item, err := s.Get(ctx, key); err == nil {
		if _, err := s.Update(ctx, key, mustJSON(t, n), item.Revision); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := s.Create(ctx, key, mustJSON(t, n)); err != nil {
		t.Fatal(err)
	}
}

// invariants checks the package's invariants over everything stored under
// /calico/ipam/v2/ and returns the list of violations.
func invariants(t testing.TB, s Store) []string {
	t.Helper()
	a := New(s, Options{})
	r, err := a.Check(context.Background(), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	if p := r.Problems; p != nil {
		bad = append(bad, p.DuplicateAllocations...)
		bad = append(bad, p.MissingHandles...)
		bad = append(bad, p.HandleCounts...)
		bad = append(bad, p.Affinities...)
		bad = append(bad, p.InvalidBlocks...)
	}
	for _, h := range r.LeakedHandles {
		bad = append(bad, "leaked handle "+h.ID)
	}
	sort.Strings(bad)
	return bad
}

// allAllocated returns every allocated address and its handle.
func allAllocated(t testing.TB, s Store) map[string]string {
	t.Helper()
	items, _, err := s.List(context.Background(), api.BlockPrefix(0))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		b, cidr, err := decodeBlock(it.Key, it.Value)
		if err != nil {
			t.Fatal(err)
		}
		for o, idx := range b.Allocations {
			if idx == nil {
				continue
			}
			ip := ordinalAddr(cidr, o).String()
			if prev, dup := out[ip]; dup {
				t.Fatalf("address %s allocated twice (%s and %s)", ip, prev, attrHandle(b.Attributes[*idx]))
			}
			out[ip] = attrHandle(b.Attributes[*idx])
		}
	}
	return out
}

var _ = kv.Unconditional

func bigZero() *big.Int { return new(big.Int) }
