package agent

import (
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// While a BGPFilter rule matches an interface, the BGP goroutine rescans
// the host's interfaces when the kernel reports an address or link change
// (a netlink subscription in the daemon's namespace, where the speaker
// runs) instead of every 2 s. When the subscription cannot start or
// breaks, the 2 s tick polls as before and tries it again.

// ifaceWatch is one address and link subscription.
type ifaceWatch struct {
	done    chan struct{}
	changed chan struct{} // buffer 1: an event since the last read
	broken  atomic.Bool
}

// startIfaceWatch subscribes to address and link changes in the
// namespace at nsPath ("": the daemon's own).
func startIfaceWatch(nsPath string) (*ifaceWatch, error) {
	w := &ifaceWatch{done: make(chan struct{}), changed: make(chan struct{}, 1)}
	addrs, links := make(chan netlink.AddrUpdate, 16), make(chan netlink.LinkUpdate, 16)
	fail := func(error) {
		w.broken.Store(true)
		w.note()
	}
	addrOK := false
	err := netns.Do(nsPath, func() error {
		if err := netlink.AddrSubscribeWithOptions(addrs, w.done, netlink.AddrSubscribeOptions{ErrorCallback: fail}); err != nil {
			return err
		}
		addrOK = true
		return netlink.LinkSubscribeWithOptions(links, w.done, netlink.LinkSubscribeOptions{ErrorCallback: fail})
	})
	if err != nil {
		close(w.done)
		if addrOK {
			go drain(addrs)
		}
		return nil, fmt.Errorf("subscribe to address and link changes: %w", err)
	}
	go w.run(addrs, links)
	return w, nil
}

// run turns updates into one pending change until both subscriptions end
// (the library closes their channels).
func (w *ifaceWatch) run(addrs chan netlink.AddrUpdate, links chan netlink.LinkUpdate) {
	for addrs != nil || links != nil {
		select {
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				w.broken.Store(true)
			}
		case _, ok := <-links:
			if !ok {
				links = nil
				w.broken.Store(true)
			}
		}
		w.note()
	}
}

func drain[T any](ch chan T) {
	for range ch {
	}
}

func (w *ifaceWatch) note() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *ifaceWatch) close() { close(w.done) }

// ifaceEvents is the channel the BGP goroutine waits on for interface
// changes (nil, which never fires, without a working subscription).
func (a *Agent) ifaceEvents() <-chan struct{} {
	if w := a.bgp.ifaces.watch; w != nil {
		return w.changed
	}
	return nil
}

// ifacesWatched reports whether interface changes arrive as events (the
// tick need not poll them).
func (a *Agent) ifacesWatched() bool {
	w := a.bgp.ifaces.watch
	return w != nil && !w.broken.Load()
}

// rewatchIfaces starts the subscription while interface routes are needed
// and stops it when they are not, or when it broke (the next scan or tick
// starts it again). The caller scans after it: a change that came before
// the subscription is in that scan.
func (a *Agent) rewatchIfaces(need bool) {
	s := &a.bgp.ifaces
	if s.watch != nil && (!need || s.watch.broken.Load()) {
		s.watch.close()
		s.watch = nil
	}
	if !need || s.watch != nil {
		return
	}
	w, err := startIfaceWatch(a.cfg.NetNS)
	if err != nil {
		a.log.Debug("BGP interfaces polled", "component", "bgp", "err", err)
		return
	}
	s.watch = w
}

// needIfaces reports whether a BGPFilter rule matches an interface.
func (a *Agent) needIfaces() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return needIfaceRoutes(a.model.BGP.Filters)
}
