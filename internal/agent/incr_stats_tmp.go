package agent

import "sync/atomic"

var IncrStats struct{ Seeds, SeedNil, SeedMismatch, Passes, Drops, Full atomic.Int64 }
