// Package startup pauses the garbage collector while the binary's package
// initialisers run, and lets long-running applets turn it back on.
//
// Why: every invocation of this multi-call binary runs the initialisers of
// every linked package (gRPC, protobuf descriptors, metric vectors), which
// allocate a few megabytes that live for the whole process. With the
// collector on, that triggers a GC cycle before main even starts, which on
// the reference 2-core machine costs a few milliseconds of a CNI ADD's
// budget. The CNI and IPAM plugins run for milliseconds and keep the
// collector paused; daemons and the CLI call Restore first thing.
//
// The package must stay free of imports other than unsafe so that it is
// initialised before the heavy packages (Go initialises ready packages in
// import-path order).
package startup

import _ "unsafe" // for go:linkname

// setGCPercent is the runtime's implementation behind
// runtime/debug.SetGCPercent; importing runtime/debug here would delay this
// package's initialisation until after most others.
//
//go:linkname setGCPercent runtime/debug.setGCPercent
func setGCPercent(int32) int32

// saved is the GC percentage in force before the pause (GOGC, or 100).
var saved int32 = -2

func init() { saved = setGCPercent(-1) }

// Restore turns the collector back on with the setting the process started
// with. Long-running applets call it at the top of Main.
func Restore() {
	if saved != -2 {
		setGCPercent(saved)
		saved = -2
	}
}
