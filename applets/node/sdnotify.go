package node

import (
	"context"
	"os"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/sdnotify"
)

// runNotified runs the daemon and, when it was started by a service manager
// that listens (NOTIFY_SOCKET, as systemd's Type=notify), tells it about
// readiness, status, watchdog and shutdown. A bad NOTIFY_SOCKET or
// WATCHDOG_USEC is logged and the daemon runs anyway: the service manager
// will report the missing notification.
func runNotified(ctx context.Context, a *agent.Agent, getenv func(string) string, log func(msg string, args ...any)) error {
	n, err := sdnotify.New(getenv)
	if err != nil {
		log("not notifying the service manager", "err", err)
	}
	if n == nil {
		return a.Run(ctx)
	}
	wd, err := sdnotify.Watchdog(getenv, os.Getpid())
	if err != nil {
		log("no watchdog pings", "err", err)
	}
	nctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.NotifyServiceManager(nctx, n, wd)
	}()
	err = a.Run(ctx)
	cancel()
	<-done // STOPPING=1 is sent before the process exits
	return err
}
