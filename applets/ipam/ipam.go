// Package ipam is the calico-ipam applet: the CNI IPAM plugin that hands
// out pod addresses from Calico's block-affinity IPAM (internal/ipam) over
// the etcd datastore. It speaks the CNI protocol through the CNI library's
// skel (ADD, DEL, CHECK, GC, STATUS, VERSION); stdout carries only the
// result or the error JSON, logs go to stderr or log_file_path.
//
// The ADD path is built to be fast: nothing happens at package init, the
// netconf is parsed once, the datastore connection is made once and lazily,
// and an ADD with a warm block costs three etcd round trips.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/datastore/etcd"
	calicoipam "github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/version"
)

// Error codes of the CNI spec used here (types has 1..11 and 999).
const (
	errPluginNotAvailable = 50 // STATUS: cannot serve ADD
)

// opTimeout bounds one IPAM operation once the host lock is held (upstream: 90 s).
const opTimeout = 90 * time.Second

// Main runs the plugin with the environment and stdin of the process.
func Main(args []string) int {
	for _, a := range args {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(version.Version)
			return 0
		}
	}
	p := &plugin{getenv: os.Getenv, stderr: os.Stderr, start: time.Now()}
	defer p.close()
	e := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:    p.add,
		Del:    p.del,
		Check:  p.check,
		GC:     p.gc,
		Status: p.status,
	}, cniversion.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "Calico CNI IPAM plugin "+version.Version)
	if e != nil {
		p.logger().Error("calico-ipam failed", "code", e.Code, "msg", e.Msg, "details", e.Details)
		if err := e.Print(); err != nil {
			fmt.Fprintf(os.Stderr, "calico-ipam: write error JSON: %v\n", err)
		}
		return 1
	}
	return 0
}

// plugin is one invocation.
type plugin struct {
	getenv  func(string) string
	stderr  io.Writer
	start   time.Time
	log     *slog.Logger
	logFile *os.File
	store   *etcd.Store
	calls   []time.Duration // datastore request durations, at debug level
}

func (p *plugin) close() {
	if p.store != nil {
		p.store.Close()
	}
	if p.logFile != nil {
		p.logFile.Close()
	}
}

func (p *plugin) logger() *slog.Logger {
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(p.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return p.log
}

// setup parses the netconf, sets up logging and connects the allocator.
func (p *plugin) setup(args *skel.CmdArgs) (*cniconf.NetConf, *calicoipam.Allocator, error) {
	conf, err := cniconf.Parse(args.StdinData)
	if err != nil {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	p.setupLogging(conf)
	cfg, err := conf.EtcdConfig(p.getenv)
	if err != nil {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if p.store, err = etcd.New(cfg); err != nil {
		return nil, nil, types.NewError(types.ErrTryAgainLater, fmt.Sprintf("connect to the datastore: %v", err), "")
	}
	ts := timeoutStore{s: p.store}
	if p.logger().Enabled(context.Background(), slog.LevelDebug) {
		ts.calls = &p.calls
	}
	return conf, calicoipam.New(ts, calicoipam.Options{Logger: p.logger()}), nil
}

func (p *plugin) setupLogging(conf *cniconf.NetConf) {
	level := slog.LevelWarn
	switch strings.ToLower(conf.LogLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error", "fatal", "panic":
		level = slog.LevelError
	}
	var w io.Writer = p.stderr
	if conf.LogFilePath != "" {
		if err := os.MkdirAll(filepath.Dir(conf.LogFilePath), 0o755); err == nil {
			if f, err := os.OpenFile(conf.LogFilePath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				p.logFile, w = f, f
			}
		}
	}
	p.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("component", "calico-ipam")
}

// nodeName resolves the node name from the netconf (or file, or host name).
func (p *plugin) nodeName(conf *cniconf.NetConf) (string, error) {
	n, err := conf.NodeName(os.ReadFile, os.Hostname)
	if err != nil {
		return "", types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return n, nil
}

// lock takes the best-effort host-wide IPAM lock: it only serialises this
// host's plugins to avoid compare-and-swap conflicts; correctness does not
// depend on it, so any failure just proceeds without it.
func (p *plugin) lock(path string) func() {
	if path == "" {
		return func() {}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.logger().Warn("cannot create the IPAM lock directory; continuing without the lock", "path", path, "err", err)
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		p.logger().Warn("cannot open the IPAM lock; continuing without it", "path", path, "err", err)
		return func() {}
	}
	t := time.Now()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		p.logger().Warn("cannot take the IPAM lock; continuing without it", "path", path, "err", err)
		f.Close()
		return func() {}
	}
	p.logger().Debug("took the host IPAM lock", "path", path, "waited", time.Since(t))
	return func() { f.Close() } // closing the file releases the lock
}

// handles returns the allocation handle and the legacy handle of a container.
func handles(conf *cniconf.NetConf, containerID string, a cniconf.Args) (handle, legacy string) {
	legacy = containerID
	if a.K8sPodNamespace != "" && a.K8sPodName != "" {
		legacy = a.K8sPodNamespace + "." + a.K8sPodName
	}
	return conf.Name + "." + containerID, legacy
}

func (p *plugin) add(args *skel.CmdArgs) error {
	conf, alloc, err := p.setup(args)
	if err != nil {
		return err
	}
	cargs, err := cniconf.ParseArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	node, err := p.nodeName(conf)
	if err != nil {
		return err
	}
	handle, _ := handles(conf, args.ContainerID, cargs)
	attrs := map[string]string{api.AttrNode: node, api.AttrTimestamp: time.Now().UTC().String()}
	if cargs.K8sPodName != "" {
		attrs[api.AttrPod], attrs[api.AttrNamespace] = cargs.K8sPodName, cargs.K8sPodNamespace
	}
	tSetup := time.Since(p.start)
	unlock := p.lock(conf.IPAMLockFile)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	t := time.Now()
	var addrs []netip.Prefix
	if cargs.IP.IsValid() {
		if _, err := alloc.AssignIP(ctx, calicoipam.AssignIPArgs{IP: cargs.IP, HandleID: handle, Attrs: attrs, Hostname: node}); err != nil {
			return cniError(err)
		}
		addrs = []netip.Prefix{netip.PrefixFrom(cargs.IP, cargs.IP.BitLen())}
	} else {
		req := calicoipam.AutoAssignArgs{
			HandleID: handle, Attrs: attrs, Hostname: node,
			IPv4Pools: conf.IPAM.IPv4Pools, IPv6Pools: conf.IPAM.IPv6Pools,
			IntendedUse: api.AllowedUseWorkload,
		}
		if conf.IPAM.AssignIPv4 {
			req.Num4 = 1
		}
		if conf.IPAM.AssignIPv6 {
			req.Num6 = 1
		}
		if req.Num4 == 0 && req.Num6 == 0 {
			return types.NewError(types.ErrInvalidNetworkConfig, `netconf asks for no address: "ipam.assign_ipv4" and "ipam.assign_ipv6" are both false`, "")
		}
		v4, v6, err := alloc.AutoAssign(ctx, req)
		if err != nil {
			return cniError(err)
		}
		addrs = append(v4, v6...)
	}
	p.logger().Debug("ADD done", "handle", handle, "addresses", addrs, "setup", tSetup, "ipam", time.Since(t), "since start", time.Since(p.start), "requests", p.calls)
	return types.PrintResult(cniconf.IPAMResult(addrs), conf.CNIVersion)
}

func (p *plugin) del(args *skel.CmdArgs) error {
	conf, alloc, err := p.setup(args)
	if err != nil {
		return err
	}
	cargs, err := cniconf.ParseArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	handle, legacy := handles(conf, args.ContainerID, cargs)
	unlock := p.lock(conf.IPAMLockFile)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := alloc.ReleaseByHandles(ctx, handle, legacy); err != nil {
		return cniError(err)
	}
	p.logger().Debug("DEL done", "handle", handle, "since start", time.Since(p.start))
	return nil
}

// check verifies that the handle exists and holds every address of
// prevResult.
func (p *plugin) check(args *skel.CmdArgs) error {
	conf, alloc, err := p.setup(args)
	if err != nil {
		return err
	}
	cargs, err := cniconf.ParseArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	want, err := conf.PrevResultAddrs()
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	handle, _ := handles(conf, args.ContainerID, cargs)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	held, err := alloc.IPsByHandle(ctx, handle)
	if errors.Is(err, calicoipam.ErrHandleNotFound) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("IPAM handle %s does not exist: container %s has no address allocated", handle, args.ContainerID), "")
	}
	if err != nil {
		return cniError(err)
	}
	for _, w := range want {
		found := false
		for _, h := range held {
			if h == w.Addr() {
				found = true
			}
		}
		if !found {
			return types.NewError(types.ErrInternal, fmt.Sprintf("address %s of prevResult is not allocated to IPAM handle %s (it holds %v)", w.Addr(), handle, held), "")
		}
	}
	return nil
}

// gc releases this network's allocations on this node whose container is
// not in cni.dev/valid-attachments (CNI 1.1).
func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, alloc, err := p.setup(args)
	if err != nil {
		return err
	}
	node, err := p.nodeName(conf)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, at := range conf.ValidAttachments {
		valid[at.ContainerID] = true
	}
	prefix := conf.Name + "."
	unlock := p.lock(conf.IPAMLockFile)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	hs, err := alloc.HandlesOnHost(ctx, node, prefix)
	if err != nil {
		return cniError(err)
	}
	var stale []string
	for _, h := range hs {
		if !valid[strings.TrimPrefix(h, prefix)] {
			stale = append(stale, h)
		}
	}
	if len(stale) > 0 {
		p.logger().Info("GC releasing allocations of containers that are gone", "handles", stale)
		if err := alloc.ReleaseByHandles(ctx, stale...); err != nil {
			return cniError(err)
		}
	}
	return nil
}

// status reports whether an ADD could be served: the datastore answers and
// at least one enabled pool matches this node for each family asked for.
func (p *plugin) status(args *skel.CmdArgs) error {
	conf, alloc, err := p.setup(args)
	if err != nil {
		return err
	}
	node, err := p.nodeName(conf)
	if err != nil {
		return types.NewError(errPluginNotAvailable, err.Error(), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = alloc.CheckPools(ctx, node, conf.IPAM.AssignIPv4, conf.IPAM.AssignIPv6, conf.IPAM.IPv4Pools, conf.IPAM.IPv6Pools, api.AllowedUseWorkload)
	if err != nil {
		return types.NewError(errPluginNotAvailable, "calico-ipam cannot assign addresses: "+err.Error(), "")
	}
	return nil
}

// cniError maps an allocator error to a CNI error with the spec's code:
// 11 (try again later) when the datastore did not answer or was too busy,
// 999 otherwise; the message is the allocator's, which says what to do.
func cniError(err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, calicoipam.ErrTooManyConflicts) {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}
