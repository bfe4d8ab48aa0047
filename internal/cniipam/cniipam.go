// Package cniipam is the request-level side of Calico IPAM for the CNI
// plugins, shared by the calico-ipam applet and the calico applet (which
// runs IPAM in-process when the netconf's ipam.type is calico-ipam), so
// that both write the same data under the same handles: the handle IDs
// ("<network>.<containerID>" and the legacy "<containerID>" or
// "<namespace>.<pod>"), the allocation attributes, IP= versus automatic
// assignment, release, CHECK of a handle, GC of a network's handles on a
// node, the STATUS pool check, the private, bounded host lock, logging, the
// datastore connection with a deadline on every request, and the mapping
// of errors to CNI error codes.
//
// It turns a netconf into allocator calls; the allocator (internal/ipam)
// owns the algorithm and the data. It never imports the dataplane or an
// applet, never touches the kernel and never writes to stdout (the applets
// print results).
package cniipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/ipam"
)

// ErrPluginNotAvailable is the CNI spec's error code for a STATUS that
// cannot serve ADD (types has 1..11 and 999 only).
const ErrPluginNotAvailable = 50

// OpTimeout bounds one IPAM operation once the host lock is held
// (upstream: 90 s).
const OpTimeout = 90 * time.Second

// PluginType is the ipam.type that selects Calico IPAM.
const PluginType = "calico-ipam"

// Env is what a plugin process gives a Session: its environment, stderr,
// and the file and host-name lookups (os.ReadFile, os.Hostname in a Main).
type Env struct {
	Getenv   func(string) string
	Stderr   io.Writer
	ReadFile func(string) ([]byte, error)
	Hostname func() (string, error)
}

// Session is one plugin invocation: the parsed netconf, its logger and,
// once Connect has run, one datastore client and an allocator over it.
type Session struct {
	Conf  *cniconf.NetConf
	Log   *slog.Logger
	Store *Store // nil until Connect
	Alloc *ipam.Allocator

	env     Env
	logFile *os.File
}

// Open parses the netconf and sets up logging for component ("calico",
// "calico-ipam"). A bad netconf is a *types.Error with code 7.
func Open(env Env, component string, stdin []byte) (*Session, error) {
	conf, err := cniconf.Parse(stdin)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	s := &Session{Conf: conf, env: env}
	s.setupLogging(component)
	return s, nil
}

// BootstrapLogger is the logger for errors found before the netconf is
// parsed: warnings and errors to stderr.
func BootstrapLogger(w io.Writer, component string) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", component)
}

// setupLogging follows upstream's log_level and log_file_path; the default
// level is warning, so an ordinary ADD writes nothing.
func (s *Session) setupLogging(component string) {
	level := slog.LevelWarn
	switch strings.ToLower(s.Conf.LogLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error", "fatal", "panic":
		level = slog.LevelError
	}
	var w io.Writer = s.env.Stderr
	if p := s.Conf.LogFilePath; p != "" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				s.logFile, w = f, f
			}
		}
	}
	s.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("component", component)
}

// Debug reports whether debug logging is on.
func (s *Session) Debug() bool { return s.Log.Enabled(context.Background(), slog.LevelDebug) }

// Connect makes the datastore client (the connection itself is made by
// the first request). A bad configuration is code 7, a client that cannot
// be made code 11.
func (s *Session) Connect() error {
	if s.Store != nil {
		return nil
	}
	cfg, err := s.Conf.EtcdConfig(s.env.Getenv)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	es, err := etcd.New(cfg)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("connect to the datastore: %v", err), "")
	}
	s.Store = NewStore(es, s.Debug())
	s.Alloc = ipam.New(s.Store, ipam.Options{Logger: s.Log})
	return nil
}

// Close releases the datastore client and the log file.
func (s *Session) Close() {
	if s.Store != nil {
		s.Store.Close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}

// NodeName resolves the node name (netconf, then nodename file, then the
// deprecated hostname, then the OS host name when the file is optional);
// failure is code 7.
func (s *Session) NodeName() (string, error) {
	n, err := s.Conf.NodeName(s.env.ReadFile, s.env.Hostname)
	if err != nil {
		return "", types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return n, nil
}

// NodeNameOrHost is NodeName with the nodename file always optional: the
// OS host name is the last resort, as upstream's calico-ipam has it (only
// the calico plugin insists on the file calico-node writes).
func (s *Session) NodeNameOrHost() (string, error) {
	c := *s.Conf
	c.NodenameFileOptional = true
	n, err := c.NodeName(s.env.ReadFile, s.env.Hostname)
	if err != nil {
		return "", types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return n, nil
}

// Handles returns the allocation handle of a container on a network and
// the legacy handle upstream also releases on DEL: "<containerID>", or
// "<namespace>.<pod>" for a Kubernetes pod.
func Handles(network, containerID string, a cniconf.Args) (handle, legacy string) {
	legacy = containerID
	if a.K8sPodNamespace != "" && a.K8sPodName != "" {
		legacy = a.K8sPodNamespace + "." + a.K8sPodName
	}
	return network + "." + containerID, legacy
}

// Attrs are the attributes stored with an allocation, as upstream's:
// node and timestamp (Go's time.String of UTC now), plus pod and
// namespace for a Kubernetes pod.
func Attrs(node string, a cniconf.Args, now time.Time) map[string]string {
	attrs := map[string]string{api.AttrNode: node, api.AttrTimestamp: now.UTC().String()}
	if a.K8sPodName != "" {
		attrs[api.AttrPod], attrs[api.AttrNamespace] = a.K8sPodName, a.K8sPodNamespace
	}
	return attrs
}

// Lock takes the host-wide IPAM lock (ipam_lock_file) and returns its
// release. The lock only serialises this host's plugins to avoid
// compare-and-swap conflicts; correctness does not depend on it, so a
// lock file that cannot be created or opened is logged and skipped.
//
// The file is created 0600 in a directory created 0700 (an existing one
// is left as it is; an existing file is narrowed to 0600), so that only
// root can open it: anyone who can open it can hold it. The wait is
// bounded by ipam_lock_timeout_seconds (DefaultIPAMLockTimeout): past it
// the error is code 11 (try again later) and says who to look for.
func (s *Session) Lock() (unlock func(), err error) {
	path := s.Conf.IPAMLockFile
	if path == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		s.Log.Warn("cannot create the IPAM lock directory; continuing without the lock", "path", path, "err", err)
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		s.Log.Warn("cannot open the IPAM lock; continuing without it", "path", path, "err", err)
		return func() {}, nil
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			s.Log.Warn("cannot narrow the IPAM lock file to mode 0600", "path", path, "err", err)
		}
	}
	t := time.Now()
	if err := flockTimeout(f, s.Conf.IPAMLockTimeout); err != nil {
		f.Close()
		if errors.Is(err, errLockTimeout) {
			return nil, types.NewError(types.ErrTryAgainLater, fmt.Sprintf("timed out after %v waiting for the host IPAM lock %s: another process holds it (find it with `fuser %s`); raise ipam_lock_timeout_seconds if IPAM is just slow", s.Conf.IPAMLockTimeout, path, path), "")
		}
		s.Log.Warn("cannot take the IPAM lock; continuing without it", "path", path, "err", err)
		return func() {}, nil
	}
	s.Log.Debug("took the host IPAM lock", "path", path, "waited", time.Since(t))
	return func() { f.Close() }, nil // closing the file releases the lock
}

var errLockTimeout = errors.New("lock wait timed out")

// flockTimeout takes an exclusive flock on f, waiting at most timeout.
//
// flock(2) has no timeout. An uncontended lock is taken at once without
// blocking; otherwise a goroutine makes the blocking call. If the wait
// times out, that goroutine is abandoned: should it get the lock later,
// it closes its own duplicate of the descriptor, which releases it, so
// that a later Lock in this process is not blocked by a lock nobody uses.
func flockTimeout(f *os.File, timeout time.Duration) error {
	err := flockRetry(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err != syscall.EWOULDBLOCK {
		return err
	}
	// The goroutine locks through a dup of the descriptor (the same open
	// file description, so the same lock) that it alone closes.
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	abandoned := false
	done := make(chan error, 1)
	go func() {
		err := flockRetry(fd, syscall.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			if err == nil {
				syscall.Flock(fd, syscall.LOCK_UN)
			}
			syscall.Close(fd)
			return
		}
		syscall.Close(fd)
		done <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case err := <-done: // it got there as the timer fired
		return err
	default:
	}
	abandoned = true
	return errLockTimeout
}

// flockRetry calls flock, retrying when a signal interrupts it.
func flockRetry(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// Assign allocates the addresses the netconf and CNI_ARGS ask for under
// handle: the IP= address, or one address of each family enabled by
// assign_ipv4/assign_ipv6 from the requested (or automatically selected)
// pools, both families committed together or not at all. Addresses come
// with the block's mask (IP= ones as /32 or /128). The caller holds the lock.
func (s *Session) Assign(ctx context.Context, node, handle string, a cniconf.Args) ([]netip.Prefix, error) {
	attrs := Attrs(node, a, time.Now())
	if a.IP.IsValid() {
		if _, err := s.Alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: a.IP, HandleID: handle, Attrs: attrs, Hostname: node}); err != nil {
			return nil, CNIError(err)
		}
		return []netip.Prefix{netip.PrefixFrom(a.IP, a.IP.BitLen())}, nil
	}
	req := ipam.AutoAssignArgs{
		HandleID: handle, Attrs: attrs, Hostname: node,
		IPv4Pools: s.Conf.IPAM.IPv4Pools, IPv6Pools: s.Conf.IPAM.IPv6Pools,
		IntendedUse: api.AllowedUseWorkload,
	}
	if s.Conf.IPAM.AssignIPv4 {
		req.Num4 = 1
	}
	if s.Conf.IPAM.AssignIPv6 {
		req.Num6 = 1
	}
	if req.Num4 == 0 && req.Num6 == 0 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, `netconf asks for no address: "ipam.assign_ipv4" and "ipam.assign_ipv6" are both false`, "")
	}
	v4, v6, err := s.Alloc.AutoAssign(ctx, req)
	if err != nil {
		return nil, CNIError(err)
	}
	return append(v4, v6...), nil
}

// Release releases every address of the handles; missing handles are fine.
func (s *Session) Release(ctx context.Context, handles ...string) error {
	if err := s.Alloc.ReleaseByHandles(ctx, handles...); err != nil {
		return CNIError(err)
	}
	return nil
}

// CheckHandle verifies that handle holds every address of want and, with
// exact, nothing else. A missing handle is code 3 (unknown container), a
// mismatch 999; the message names the handle and the addresses.
func (s *Session) CheckHandle(ctx context.Context, handle string, want []netip.Addr, exact bool) error {
	held, err := s.Alloc.IPsByHandle(ctx, handle)
	if errors.Is(err, ipam.ErrHandleNotFound) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("IPAM handle %s does not exist: the container has no address allocated", handle), "")
	}
	if err != nil {
		return CNIError(err)
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(held, w) {
			missing = append(missing, w.String())
		}
	}
	if exact {
		for _, h := range held {
			if !slices.Contains(want, h) {
				extra = append(extra, h.String())
			}
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("IPAM handle %s does not hold %s (it holds %v)", handle, strings.Join(missing, ", "), held))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("IPAM handle %s also holds %s, which the container does not have", handle, strings.Join(extra, ", ")))
	}
	if len(problems) > 0 {
		return types.NewError(types.ErrInternal, strings.Join(problems, "; "), "")
	}
	return nil
}

// ValidContainers returns the container IDs of cni.dev/valid-attachments.
// ok is false when the netconf has no such list: GC then does nothing
// rather than treat every attachment as stale.
func ValidContainers(conf *cniconf.NetConf) (valid map[string]bool, ok bool) {
	if !conf.HasValidAttachments {
		return nil, false
	}
	valid = map[string]bool{}
	for _, at := range conf.ValidAttachments {
		valid[at.ContainerID] = true
	}
	return valid, true
}

// StaleHandles returns this network's handles on node whose container is
// not in valid.
func (s *Session) StaleHandles(ctx context.Context, node string, valid map[string]bool) ([]string, error) {
	prefix := s.Conf.Name + "."
	hs, err := s.Alloc.HandlesOnHost(ctx, node, prefix)
	if err != nil {
		return nil, CNIError(err)
	}
	var stale []string
	for _, h := range hs {
		if !valid[strings.TrimPrefix(h, prefix)] {
			stale = append(stale, h)
		}
	}
	return stale, nil
}

// GCHandles releases this network's handles on node whose container is
// not in valid, and returns them.
func (s *Session) GCHandles(ctx context.Context, node string, valid map[string]bool) ([]string, error) {
	stale, err := s.StaleHandles(ctx, node, valid)
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	s.Log.Info("GC releasing allocations of containers that are gone", "handles", stale)
	if err := s.Alloc.ReleaseByHandles(ctx, stale...); err != nil {
		return nil, CNIError(err)
	}
	return stale, nil
}

// Status reports whether an ADD could be served: the datastore answers,
// the node exists and a pool matches it for each family asked for. Any
// failure is code 50 (plugin not available) with the reason.
func (s *Session) Status(ctx context.Context, node string) error {
	c := s.Conf.IPAM
	if err := s.Alloc.CheckPools(ctx, node, c.AssignIPv4, c.AssignIPv6, c.IPv4Pools, c.IPv6Pools, api.AllowedUseWorkload); err != nil {
		return types.NewError(ErrPluginNotAvailable, "Calico IPAM cannot assign addresses: "+err.Error(), "")
	}
	return nil
}

// CNIError maps an error to a CNI error with the spec's code: a
// *types.Error is kept; 11 (try again later) when the datastore did not
// answer in time or was too busy; 999 otherwise. The message is the
// error's own, which says what is wrong and what to do.
func CNIError(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, ipam.ErrTooManyConflicts) {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}
