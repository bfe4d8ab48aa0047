package agent

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// memLimiter sets the Go runtime's soft memory limit from the live heap
// after each successful pass: 1.5 × live + 12 MiB, at least 42 MiB. With
// thousands of remote nodes a resync's netlink dumps are mostly garbage,
// and GOGC alone lets the heap reach twice the live size before
// collecting; the limit caps that overshoot (10,000 remote nodes: about
// 20 MB live). Because it follows the live heap, the collector never runs
// back to back as a fixed limit would once the model outgrows it. A
// GOMEMLIMIT set by the operator wins.
type memLimiter struct {
	off  bool
	last int64
	buf  []rtmetrics.Sample
}

const (
	minSoftLimit  = 42 << 20
	softLimitPad  = 12 << 20
	softLimitStep = 4 << 20 // ignore changes smaller than this
)

func newMemLimiter() *memLimiter {
	_, set := os.LookupEnv("GOMEMLIMIT")
	return &memLimiter{off: set, buf: []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}}
}

// softLimit is the limit for a live heap of live bytes.
func softLimit(live int64) int64 {
	return max(minSoftLimit, live+live/2+softLimitPad)
}

func (m *memLimiter) update() {
	if m.off {
		return
	}
	rtmetrics.Read(m.buf)
	if m.buf[0].Value.Kind() != rtmetrics.KindUint64 {
		m.off = true
		return
	}
	limit := softLimit(int64(m.buf[0].Value.Uint64()))
	if d := limit - m.last; d > -softLimitStep && d < softLimitStep {
		return
	}
	debug.SetMemoryLimit(limit)
	m.last = limit
}
