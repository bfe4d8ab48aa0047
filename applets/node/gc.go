package node

import "runtime/debug"

// gcPercent is the daemon's garbage collector target when GOGC is not set:
// the heap may grow to 1.5 times what the last collection kept instead of
// Go's default 2 times. The daemon's heap is mostly its model of the
// cluster and its last Calc result, which live for the whole process, so
// Go's default lets the heap peak near twice that on every full pass.
// With 10,000 remote nodes this keeps the daemon's peak RSS (VmHWM) at
// 50-52.5 MB instead of 54-56.6; the price is a collection per ~9 MB
// allocated instead of per ~18 MB there (each ~10-15 ms of CPU), which did
// not show above the noise of the start's CPU (1.9-2.1 s) or of a no-op
// full resync (about 31 ms) on the reference machine. GOGC, when set, wins.
const gcPercent = 50

// setGCPercent applies gcPercent unless the environment sets GOGC.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
