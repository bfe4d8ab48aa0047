package testutil

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// Flow probes shared by the policy tests (internal/dataplane/nft against
// one nftables table, internal/e2e against real daemons): servers that
// give a probe something to reach, and probes that say only whether a
// flow got through.

// ServeTCP listens on addr:port, for each port, inside the namespace at ns
// and accepts and closes every connection until the test ends.
func ServeTCP(t testing.TB, ns, addr string, ports ...int) {
	t.Helper()
	for _, port := range ports {
		var ln net.Listener
		if err := netns.Do(ns, func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

// DialTCP connects from the namespace at ns to addr:port and closes the
// connection. A dropped SYN is never answered, so a flow that policy
// drops fails after timeout; one it rejects, at once.
func DialTCP(ns, addr string, port int, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(port)), timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Ping sends one ICMP echo request from the namespace at ns to addr and
// waits up to 1 s for the reply; extra ping options (e.g. "-W", "5" or
// "-I", a source address) go after the defaults and override them.
func Ping(ns, addr string, extra ...string) error {
	args := append([]string{"ping", "-n", "-q", "-c", "1", "-W", "1"}, extra...)
	_, err := RunInErr(ns, append(args, addr)...)
	return err
}
