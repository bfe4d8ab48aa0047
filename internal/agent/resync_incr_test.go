package agent

import (
	"reflect"
	"testing"

	"github.com/onecalico/calico/internal/datastore/memory"
)

// TestResyncReusesIncrResult: a resync with nothing changed takes the
// incremental calculator's whole result, which equals Calc of its model,
// instead of running Calc; not when something changed, not for a pass
// that is not a full one, and not with BGP (learned routes bypass the
// calculator).
func TestResyncReusesIncrResult(t *testing.T) {
	a, err := New(Config{Store: memory.New(), NodeName: "n1", RunDir: t.TempDir(), Backend: BackendVXLAN})
	if err != nil {
		t.Fatal(err)
	}
	var s *incrSim
	for seed := uint64(1); s == nil || s.ic == nil; seed++ {
		s = runIncrSeq(t, seed, 20)
	}
	for _, c := range []struct {
		name          string
		full, changed bool
		bgp, want     bool
	}{
		{"resync, nothing changed", true, false, false, true},
		{"full pass after a change", true, true, false, false},
		{"not a full pass", false, false, false, false},
		{"BGP", true, false, true, false},
	} {
		a.dp = &dataplane{incr: s.ic}
		a.bgp.wanted = c.bgp
		a.keepIncrResult(c.full, c.changed)
		if a.dp.calcOK != c.want {
			t.Errorf("%s: reuse %v, want %v", c.name, a.dp.calcOK, c.want)
			continue
		}
		if !c.want {
			continue
		}
		if a.dp.calcModel != s.ic.m {
			t.Errorf("%s: the reused model is not the calculator's", c.name)
		}
		if want := Calc(s.live.clone()); !reflect.DeepEqual(a.dp.calc, want) {
			t.Errorf("%s: reused result differs from Calc:\n%s", c.name, diffLines(a.dp.calc.String(), want.String()))
		}
	}
}

// BenchmarkResyncResult: what a resync at 1,000 nodes spends on its
// desired state: before, a model copy and Calc; now the calculator's
// whole result.
func BenchmarkResyncResult(b *testing.B) {
	live := model1000()
	m := live.clone()
	ic := newIncr(m, Calc(m))
	if ic == nil {
		b.Fatal("not seeded")
	}
	b.Run("model copy and Calc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Calc(live.clone())
		}
	})
	b.Run("calculator's result", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ic.desired()
		}
	})
}
