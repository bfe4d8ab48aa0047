package agent

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Notifier is the service manager's notification channel (sd_notify(3));
// *sdnotify.Notifier satisfies it.
type Notifier interface {
	Notify(assignments ...string) error
}

// notifyStatusInterval is how often the STATUS line is re-computed (and
// sent when it changed).
const notifyStatusInterval = time.Second

// NotifyServiceManager tells the service manager about the daemon until
// ctx ends; run it next to Run with the same ctx. It sends READY=1 once,
// as soon as the first complete dataplane apply is done (Ready), a STATUS=
// line whenever the daemon's one-line state changes, WATCHDOG=1 every
// watchdog/2 while the daemon is live (0 = no watchdog) and STOPPING=1 when
// ctx ends.
//
// Why liveness gates the watchdog: Status().Live turns false when the
// reconcile loop has not reported for livenessTimeout. Withholding the ping
// then lets systemd restart a stuck daemon (WatchdogSec), which a ping from
// a timer alone would hide.
func (a *Agent) NotifyServiceManager(ctx context.Context, n Notifier, watchdog time.Duration) {
	log := a.log.With("component", "sdnotify")
	failed := false
	send := func(assignments ...string) {
		err := n.Notify(assignments...)
		switch {
		case err != nil && !failed:
			log.Warn("cannot notify the service manager", "err", err)
		case err == nil && failed:
			log.Info("notifying the service manager again")
		}
		failed = err != nil
	}
	var ping <-chan time.Time
	if watchdog > 0 {
		t := time.NewTicker(watchdog / 2)
		defer t.Stop()
		ping = t.C
	}
	poll := time.NewTicker(notifyStatusInterval)
	defer poll.Stop()
	ready := a.Ready()
	// Not computed: Run may not have marked the daemon live yet.
	last := "starting"
	send("STATUS=" + last)
	for {
		select {
		case <-ctx.Done():
			send("STOPPING=1", "STATUS=stopping; the dataplane stays in place")
			return
		case <-ready:
			ready = nil
			last = statusLine(a.Status())
			send("READY=1", "STATUS="+last)
		case <-poll.C:
			if s := statusLine(a.Status()); s != last {
				last = s
				send("STATUS=" + s)
			}
		case <-ping:
			if a.Status().Live {
				send("WATCHDOG=1")
			} else {
				log.Warn("not live: withholding the watchdog ping")
			}
		}
	}
}

// statusLine is the daemon's state in one line, for STATUS=.
func statusLine(s Status) string {
	var b strings.Builder
	switch {
	case !s.Live:
		b.WriteString("not live: the dataplane loop is stuck")
	case !s.Ready && len(s.Errors) > 0:
		fmt.Fprintf(&b, "not ready: %s", s.Errors[0])
	case !s.Ready:
		b.WriteString("starting: waiting for the datastore and the first dataplane apply")
	default:
		fmt.Fprintf(&b, "ready: %d routes, %d VTEPs, %d local workloads", s.Routes, s.VTEPs, s.LocalWorkloads)
	}
	if s.Ready && len(s.Degraded) > 0 {
		fmt.Fprintf(&b, "; degraded: %s", strings.Join(s.Degraded, "; "))
	}
	return strings.ReplaceAll(b.String(), "\n", " ")
}
