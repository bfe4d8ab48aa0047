package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// healthBody is the JSON body of /liveness and /readiness.
type healthBody struct {
	Live      bool      `json:"live"`
	Ready     bool      `json:"ready"`
	LastApply time.Time `json:"lastApply,omitzero"`
	Degraded  []string  `json:"degraded,omitempty"`
	Errors    []string  `json:"errors,omitempty"`
	Datastore string    `json:"datastore,omitempty"`
}

func (a *Agent) healthHandler() http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, ok bool) {
		s := a.Status()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(healthBody{Live: s.Live, Ready: s.Ready, LastApply: s.LastApply, Degraded: s.Degraded, Errors: s.Errors, Datastore: s.Datastore})
	}
	mux.HandleFunc("/liveness", func(w http.ResponseWriter, r *http.Request) { write(w, a.Status().Live) })
	mux.HandleFunc("/readiness", func(w http.ResponseWriter, r *http.Request) {
		s := a.Status()
		write(w, s.Live && s.Ready)
	})
	return mux
}

// listenIn opens a TCP listener inside the daemon's network namespace: a
// socket belongs to the namespace it was created in, whichever thread later
// uses it.
func listenIn(nsPath, addr string) (net.Listener, error) {
	var l net.Listener
	err := netns.Do(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// startListeners serves health and metrics as FelixConfiguration (and the
// FELIX_* overrides) say. A port of 0 or a disabled endpoint opens nothing.
func (a *Agent) startListeners(ctx context.Context, wg *sync.WaitGroup) error {
	if a.cfg.DisableListeners {
		return nil
	}
	a.mu.Lock()
	fc := a.model.Felix
	a.mu.Unlock()
	serve := func(name, host string, port int, h http.Handler) error {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		l, err := listenIn(a.cfg.NetNS, addr)
		if err != nil {
			return fmt.Errorf("listen for %s on %s: %w", name, addr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("server stopped", "component", "health", "server", name, "err", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
		a.log.Info("serving", "component", "health", "server", name, "addr", l.Addr().String())
		return nil
	}
	if fc.HealthEnabled && fc.HealthPort != 0 {
		if err := serve("health", fc.HealthHost, fc.HealthPort, a.healthHandler()); err != nil {
			return err
		}
	}
	if fc.MetricsEnabled && fc.MetricsPort != 0 {
		h := promhttp.HandlerFor(a.met.registry, promhttp.HandlerOpts{Registry: a.met.registry})
		if err := serve("metrics", fc.MetricsHost, fc.MetricsPort, h); err != nil {
			return err
		}
	}
	return nil
}

// serveControl answers the control socket: one request line per
// connection ("status", or "resync" to start a full resync now), one
// JSON reply (the status).
func (a *Agent) serveControl(ctx context.Context, l net.Listener) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("control socket stopped", "component", "control", "err", err)
			}
			return
		}
		go a.handleControl(c)
	}
}

func (a *Agent) handleControl(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	enc := json.NewEncoder(c)
	switch strings.TrimSpace(line) {
	case "status", "":
		_ = enc.Encode(a.Status())
	case "resync":
		a.RequestResync()
		_ = enc.Encode(a.Status())
	default:
		_ = enc.Encode(map[string]string{"error": fmt.Sprintf("unknown request %q: want status or resync", strings.TrimSpace(line))})
	}
}

// ErrNotRunning is wrapped by QueryStatus when no daemon answers.
var ErrNotRunning = errors.New("calico-node is not running")

// QueryStatus asks the daemon behind the control socket at path for its
// status.
func QueryStatus(ctx context.Context, path string) (Status, error) {
	return control(ctx, path, "status")
}

// RequestResyncAt asks the daemon behind the control socket at path for a
// full resync (it starts after the reply) and returns the status it had
// before.
func RequestResyncAt(ctx context.Context, path string) (Status, error) {
	return control(ctx, path, "resync")
}

// control sends one request line and reads the status reply.
func control(ctx context.Context, path, req string) (Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return Status{}, fmt.Errorf("query %s: %w", path, err)
	}
	var s Status
	if err := json.NewDecoder(c).Decode(&s); err != nil {
		return Status{}, fmt.Errorf("read status from %s: %w", path, err)
	}
	return s, nil
}
