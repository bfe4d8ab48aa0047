package agent

import (
	"maps"
	"runtime"
)

// The daemon's memory peaks at its first full pass with a large cluster:
// the model (every Node and block), the pass's copy of it, the Calc result
// and the route, neighbour and FDB sets being installed are all live at
// once. The helpers here keep that peak down.

// collectBeforeFirstPass runs a collection before the first full pass
// copies the model (once per agent; the reconcile goroutine's). The
// snapshot's decoding leaves its garbage behind, and the collector's next
// goal is a multiple of the heap it last marked, so without this the first
// pass can grow the heap to that multiple of the decode's peak before
// anything is collected. One collection at start: a few milliseconds of
// CPU with 10,000 remote nodes. Only for an agent on a real kernel (one
// per daemon process): the collection is the whole process's, and the
// scale harness runs hundreds of agents in one process on a Config.Kernel.
func (dp *dataplane) collectBeforeFirstPass() {
	if dp.collected || dp.a.cfg.Kernel != nil {
		return
	}
	dp.collected = true
	runtime.GC()
}

// tunnelModel is the part of the model syncTunnels reads (this node and
// the pools), copied under the lock: not every Node and block.
func (a *Agent) tunnelModel() *Model {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := &Model{NodeName: a.model.NodeName, Nodes: map[string]Node{}, Pools: maps.Clone(a.model.Pools)}
	if me, ok := a.model.Nodes[a.cfg.NodeName]; ok {
		m.Nodes[a.cfg.NodeName] = me
	}
	return m
}
