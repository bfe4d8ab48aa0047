package agent

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestCalcFastPaths checks calc_fast.go's shortcuts against the general
// paths on random clusters whose items collide often (duplicate VTEP
// addresses and MACs, overlapping blocks of several sizes).
func TestCalcFastPaths(t *testing.T) {
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 3))
		s := &incrSim{t: t, r: r, live: randomModel(rand.New(rand.NewPCG(seed, 5)))}
		for step := range 60 {
			var d dirtySet
			s.change(&d)
			m := s.live.clone()
			slow := calc{m: m, me: m.Nodes[m.NodeName], slow: true}
			if got, want := Calc(m), slow.run(); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: Calc differs from its general paths\n%s", seed, step, diffLines(got.String(), want.String()))
			}
		}
	}
}
