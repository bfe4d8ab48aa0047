package route

import "github.com/onecalico/calico/internal/dataplane/netns"

// Batcher installs many routes with few system calls: it writes a chunk
// of RTM_NEWROUTE requests at once and then reads the replies (the
// failures and one acknowledgement), instead of one request and one reply
// per route (which bounds a bulk change at one round trip per route). It
// is used for large incremental changes, such as thousands of routes
// learned from a BGP peer at once. Not safe for concurrent use.
type Batcher struct {
	s     *netns.BatchSocket
	links map[string]int // link name -> index cache of ApplyChanges
	// replaceRaw's state (batch_raw.go): last sequence number, buffers.
	seq        uint32
	wbuf, rbuf []byte
	sent       []int
}

// NewBatcher opens a route socket in the namespace at nsPath ("" for the
// process's own).
func NewBatcher(nsPath string) (*Batcher, error) {
	s, err := netns.NewBatchSocket(nsPath)
	if err != nil {
		return nil, err
	}
	return &Batcher{s: s}, nil
}

// Forget drops the cached link indexes (after links may have been
// recreated).
func (b *Batcher) Forget() { b.links = nil }

// Close closes the socket.
func (b *Batcher) Close() { b.s.Close() }

// batchable reports whether r can go in a batch: a unicast route with no
// MTU or preferred source (those go through netlink.Handle).
func batchable(r Route) bool {
	return r.Type == Unicast && r.MTU == 0 && !r.Src.IsValid()
}

// replace installs routes (all batchable, links resolved in ls) and
// returns one error per failed route (batch_raw.go).
func (b *Batcher) replace(routes []Route, table int, ls links) []error {
	return b.replaceRaw(routes, table, ls)
}
