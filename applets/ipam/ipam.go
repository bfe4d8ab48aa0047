// Package ipam is the calico-ipam applet: the CNI IPAM plugin that hands
// out pod addresses from Calico's block-affinity IPAM (internal/ipam) over
// the etcd datastore. It speaks the CNI protocol through the CNI library's
// skel (ADD, DEL, CHECK, GC, STATUS, VERSION); stdout carries only the
// result or the error JSON, logs go to stderr or log_file_path.
//
// The request-level logic (handles, attributes, IP= versus automatic
// assignment, release, the host lock, timeouts, error codes) lives in
// internal/cniipam, shared with the calico plugin, which runs the same
// code in-process; this applet only wires it to the CNI commands.
//
// The ADD path is built to be fast: nothing happens at package init, the
// netconf is parsed once, the datastore connection is made once and lazily,
// and an ADD with a warm block costs three etcd round trips.
package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/version"
)

const component = "calico-ipam"

// Main runs the plugin with the environment and stdin of the process.
func Main(args []string) int {
	for _, a := range args {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(version.Version)
			return 0
		}
	}
	p := &plugin{env: cniipam.Env{Getenv: os.Getenv, Stderr: os.Stderr, ReadFile: os.ReadFile, Hostname: os.Hostname}, start: time.Now()}
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
	env   cniipam.Env
	start time.Time
	s     *cniipam.Session
}

func (p *plugin) close() {
	if p.s != nil {
		p.s.Close()
	}
}

func (p *plugin) logger() interface {
	Error(msg string, args ...any)
} {
	if p.s != nil {
		return p.s.Log
	}
	return cniipam.BootstrapLogger(p.env.Stderr, component)
}

// setup parses the netconf and CNI_ARGS and connects to the datastore.
func (p *plugin) setup(args *skel.CmdArgs) (*cniipam.Session, cniconf.Args, error) {
	s, err := cniipam.Open(p.env, component, args.StdinData)
	if err != nil {
		return nil, cniconf.Args{}, err
	}
	p.s = s
	cargs, err := cniconf.ParseArgs(args.Args)
	if err != nil {
		return nil, cargs, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	if err := s.Connect(); err != nil {
		return nil, cargs, err
	}
	return s, cargs, nil
}

func (p *plugin) add(args *skel.CmdArgs) error {
	s, cargs, err := p.setup(args)
	if err != nil {
		return err
	}
	node, err := s.NodeNameOrHost()
	if err != nil {
		return err
	}
	handle, _ := cniipam.Handles(s.Conf.Name, args.ContainerID, cargs)
	tSetup := time.Since(p.start)
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget) // as the plugin's ADD
	t := time.Now()
	if err := s.CheckReady(ctx); err != nil {
		return err
	}
	addrs, err := s.Assign(ctx, node, handle, cargs)
	if err != nil {
		return err
	}
	if s.Debug() {
		trips, calls := s.Store.Trips()
		s.Log.Debug("ADD done", "handle", handle, "addresses", addrs, "setup", tSetup, "ipam", time.Since(t), "since start", time.Since(p.start), "trips", trips, "requests", calls)
	}
	return types.PrintResult(cniconf.IPAMResult(addrs), s.Conf.CNIVersion)
}

func (p *plugin) del(args *skel.CmdArgs) error {
	s, cargs, err := p.setup(args)
	if err != nil {
		return err
	}
	handle, legacy := cniipam.Handles(s.Conf.Name, args.ContainerID, cargs)
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget) // as the plugin's DEL
	if err := s.CheckReady(ctx); err != nil {
		return err
	}
	if err := s.Release(ctx, handle, legacy); err != nil {
		return err
	}
	s.Log.Debug("DEL done", "handle", handle, "since start", time.Since(p.start))
	return nil
}

// check verifies that the handle exists and holds every address of
// prevResult.
func (p *plugin) check(args *skel.CmdArgs) error {
	s, cargs, err := p.setup(args)
	if err != nil {
		return err
	}
	want, err := s.Conf.PrevResultAddrs()
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	addrs := make([]netip.Addr, 0, len(want))
	for _, w := range want {
		addrs = append(addrs, w.Addr())
	}
	handle, _ := cniipam.Handles(s.Conf.Name, args.ContainerID, cargs)
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	ctx = cniipam.WithBudget(ctx, cniipam.DatastoreBudget) // as the plugin's CHECK
	return s.CheckHandle(ctx, handle, addrs, false)
}

// gc releases this network's allocations on this node whose container is
// not in cni.dev/valid-attachments (CNI 1.1).
func (p *plugin) gc(args *skel.CmdArgs) error {
	s, _, err := p.setup(args)
	if err != nil {
		return err
	}
	node, err := s.NodeNameOrHost()
	if err != nil {
		return err
	}
	valid, ok := cniipam.ValidContainers(s.Conf)
	if !ok {
		s.Log.Warn("GC without cni.dev/valid-attachments: nothing released")
		return nil
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cniipam.OpTimeout)
	defer cancel()
	_, err = s.GCHandles(ctx, node, valid)
	return err
}

// status reports whether an ADD could be served: the datastore answers and
// at least one enabled pool matches this node for each family asked for.
func (p *plugin) status(args *skel.CmdArgs) error {
	s, _, err := p.setup(args)
	if err != nil {
		return err
	}
	node, err := s.NodeNameOrHost()
	if err != nil {
		return types.NewError(cniipam.ErrPluginNotAvailable, err.Error(), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Status(ctx, node)
}
