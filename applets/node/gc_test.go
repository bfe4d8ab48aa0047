package node

import (
	"runtime/debug"
	"testing"
)

func TestGCPercentDefaultUnlessGOGCSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, gcPercent)
	}
	getenv, _ := fakeEnv("GOGC=200")
	debug.SetGCPercent(200) // as the runtime would have from GOGC=200
	setGCPercent(getenv)
	if got := debug.SetGCPercent(100); got != 200 {
		t.Errorf("GOGC=200: GC percent %d, want 200 kept", got)
	}
}
