package testutil

import (
	"net"
	"os"
	"sync"
	"testing"
)

// CutProxy forwards a unix socket to another, byte for byte (TLS passes
// through), and can cut the path: Cut stops all forwarding while keeping
// every connection open and accepting new ones, as a network partition
// between one client and its server does; Restore forwards again. It lets a
// test cut one client off a datastore that everyone else still reaches.
type CutProxy struct {
	Path   string // the socket clients dial
	target string
	ln     net.Listener
	mu     sync.Mutex
	open   chan struct{} // closed while forwarding
	conns  map[net.Conn]struct{}
}

// StartCutProxy listens on path and forwards to the unix socket target
// until test end.
func StartCutProxy(t testing.TB, path, target string) *CutProxy {
	t.Helper()
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("proxy listen %s: %v", path, err)
	}
	p := &CutProxy{Path: path, target: target, ln: ln, open: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.open)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Cut stops forwarding (connections stay open; nothing gets through).
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Restore forwards again; what was held back is delivered, as TCP would
// once a short partition heals.
func (p *CutProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// gate returns once forwarding is on, or when stop closes.
func (p *CutProxy) gate(stop <-chan struct{}) bool {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
		return true
	case <-stop:
		return false
	}
}

func (p *CutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *CutProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *CutProxy) handle(c net.Conn) {
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	stop := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(stop) }) }
	// A connection made while cut waits (unanswered) until restored.
	if !p.gate(nil) {
		return
	}
	up, err := net.Dial("unix", p.target)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	go func() { p.copy(up, c, stop); done() }()
	p.copy(c, up, stop)
	done()
}

// copy forwards src to dst, holding each chunk while the path is cut.
func (p *CutProxy) copy(dst, src net.Conn, stop chan struct{}) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(stop) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection: close both ways
		}
	}
}

func (p *CutProxy) close() {
	p.ln.Close()
	p.Restore()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
