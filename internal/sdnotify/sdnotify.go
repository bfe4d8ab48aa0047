// Package sdnotify speaks the service manager notification protocol
// (sd_notify(3)) with the standard library: one datagram per message, of
// newline-separated VAR=VALUE assignments such as READY=1, STATUS=...,
// WATCHDOG=1 and STOPPING=1, sent to the unix datagram socket named by
// NOTIFY_SOCKET. A name starting with "@" is an abstract socket (Go maps
// the "@" to the leading NUL byte).
//
// It owns only the wire protocol and the reading of the WATCHDOG_USEC and
// WATCHDOG_PID settings; what to say and when is the daemon's business. It
// imports nothing from this module.
package sdnotify

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to one socket. The zero of *Notifier (nil)
// is valid and sends nothing: the process does not run under a service
// manager that listens.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for the socket named by NOTIFY_SOCKET (getenv is
// os.Getenv in a Main), or nil when the variable is empty. Only unix
// sockets are supported: a path or an abstract name starting with "@".
func New(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	switch {
	case name == "":
		return nil, nil
	case strings.HasPrefix(name, "/"), strings.HasPrefix(name, "@"):
		return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
	default:
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: only unix sockets (an absolute path or @abstract name) are supported", name)
	}
}

// Notify sends the assignments (e.g. "READY=1", "STATUS=syncing") as one
// message. On a nil Notifier it does nothing.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil || len(assignments) == 0 {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") || strings.Contains(a, "\n") {
			return fmt.Errorf("sd_notify: %q is not a single VAR=VALUE line", a)
		}
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: connect to %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: send to %s: %w", n.addr.Name, err)
	}
	return nil
}

// Watchdog returns the watchdog timeout the service manager expects
// WATCHDOG=1 within (WATCHDOG_USEC), or 0 when there is none or it is
// meant for another process (WATCHDOG_PID is set and is not pid).
func Watchdog(getenv func(string) string, pid int) (time.Duration, error) {
	us := getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID=%q: not a process ID", p)
		}
		if n != pid {
			return 0, nil
		}
	}
	n, err := strconv.ParseUint(us, 10, 64)
	if err != nil || n == 0 {
		return 0, errors.New("WATCHDOG_USEC=" + strconv.Quote(us) + ": want a positive number of microseconds")
	}
	return time.Duration(min(n, math.MaxInt64/1000)) * time.Microsecond, nil
}
