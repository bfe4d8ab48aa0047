package testutil

import (
	"net"
	"os"
	"sync"
	"testing"
)

// CutProxy forwards a unix socket to another, byte for byte (TLS passes
// through), and can cut the path as a long network partition between one
// client and its server does: Cut drops everything either side sends while
// every connection stays open (new ones are accepted and never answered),
// so the client sees silence, not a reset. Restore ends the partition the
// way a partition longer than the client's keepalive ends: the connections
// that lived through it are gone (closed), and new ones are forwarded
// again. It lets a test cut one client off a datastore that others still
// reach.
type CutProxy struct {
	Path   string // the socket clients dial
	target string
	ln     net.Listener
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool // value: the connection lived through a cut
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
	p := &CutProxy{Path: path, target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Cut starts the partition.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		p.conns[c] = true
	}
}

// Restore ends it: connections that saw the cut are closed.
func (p *CutProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c, sawCut := range p.conns {
		if sawCut {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *CutProxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
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

// track adds c (or removes it, add false); it reports whether the path is
// cut at that moment.
func (p *CutProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = p.cut
	} else {
		delete(p.conns, c)
	}
	return p.cut
}

func (p *CutProxy) handle(c net.Conn) {
	defer c.Close()
	defer p.track(c, false)
	if p.track(c, true) {
		p.copy(nil, c) // never answered; closed by Restore
		return
	}
	up, err := net.Dial("unix", p.target)
	if err != nil {
		return // as a dead server: connection refused
	}
	defer up.Close()
	defer p.track(up, false)
	p.track(up, true)
	done := make(chan struct{})
	go func() { p.copy(c, up); close(done) }()
	p.copy(up, c)
	<-done
}

// copy forwards src to dst (drops it while cut, or always when dst is nil)
// until either side closes; then it closes both.
func (p *CutProxy) copy(dst, src net.Conn) {
	if dst != nil {
		defer dst.Close()
	}
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !p.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed
		}
	}
}

func (p *CutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
