// Package netns binds kernel work to a network namespace named by a path.
//
// It owns the only thread-switching code of the dataplane: Do runs a function
// on a locked OS thread that has entered the namespace, and returns the thread
// to its original namespace afterwards. Everything else should prefer handles
// that are bound to a namespace once (NewHandle, NewNftConn) so that no
// goroutine ever runs in the wrong namespace.
//
// An empty namespace path always means "the namespace of the calling thread",
// and in that case no thread switching happens at all.
//
// This package imports only the standard library, netlink, netns and
// nftables. It keeps no global state.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNotNetNS is returned (wrapped) when a path exists but does not refer to
// a network namespace, e.g. the left-over mount point of a deleted namespace.
var ErrNotNetNS = errors.New("not a network namespace")

// Open opens the network namespace at nsPath and returns its file
// descriptor; "" opens the calling thread's namespace. The path must be a
// namespace file (nsfs), otherwise the error wraps ErrNotNetNS; a missing
// path wraps fs.ErrNotExist. The caller closes the file.
func Open(nsPath string) (*os.File, error) {
	p := nsPath
	if p == "" {
		p = "/proc/thread-self/ns/net"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", p, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("statfs netns %s: %w", p, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("open netns %s: %w", p, ErrNotNetNS)
	}
	return f, nil
}

// Do runs fn with the calling goroutine's work moved into the network
// namespace at nsPath, and returns fn's error. With nsPath == "" it simply
// calls fn.
//
// Why a separate goroutine (the Cilium pattern): setns(2) changes only the
// current OS thread. fn runs on a fresh goroutine that locks its thread,
// enters the namespace, runs fn and re-enters the original namespace. Only
// when that succeeds is the thread unlocked; if returning fails, the
// goroutine exits with the thread still locked, which makes the Go runtime
// terminate the thread instead of reusing it in the wrong namespace. The
// caller's own thread is never switched. Goroutines started by fn do not
// inherit the namespace.
func Do(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	target, err := Open(nsPath)
	if err != nil {
		return err
	}
	defer target.Close()
	return doFd(int(target.Fd()), nsPath, fn)
}

func doFd(fd int, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime kills it when this
			// goroutine returns, so it is never reused in name.
			errc <- errors.Join(ferr, fmt.Errorf("return from netns %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NewHandle returns a NETLINK_ROUTE handle whose socket lives in the network
// namespace at nsPath ("" = the calling thread's namespace). Every request
// made through it acts on that namespace, from any goroutine. Close it when
// done.
func NewHandle(nsPath string) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := Do(nsPath, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("new netlink handle in netns %q: %w", nsPath, err)
	}
	return h, nil
}

// NewNftConn returns a lasting nftables connection bound to the network
// namespace at nsPath ("" = the calling thread's namespace) and a closer that
// releases the socket and the namespace file.
func NewNftConn(nsPath string) (*nftables.Conn, func() error, error) {
	if nsPath == "" {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return nil, nil, fmt.Errorf("new nftables conn: %w", err)
		}
		return c, c.CloseLasting, nil
	}
	f, err := Open(nsPath)
	if err != nil {
		return nil, nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("new nftables conn in netns %s: %w", nsPath, err)
	}
	closer := func() error {
		return errors.Join(c.CloseLasting(), f.Close())
	}
	return c, closer, nil
}
