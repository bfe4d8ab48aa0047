// Package cni is the calico applet: the CNI plugin that plumbs a pod into
// the node the way upstream Calico's plugin does (a veth with the host end
// "cali..." carrying MAC ee:ee:ee:ee:ee:ee and proxy ARP, the pod's /32
// and /128 addresses, a default route via 169.254.1.1, host /32 routes),
// records it as a WorkloadEndpoint and creates the network's profile.
// It speaks CNI spec 0.3.0 to 1.1.0 through the CNI library's skel: ADD,
// DEL, CHECK, GC, STATUS and VERSION. Stdout carries only the result or the
// error JSON.
//
// When ipam.type is calico-ipam, IPAM runs in-process through
// internal/cniipam (the same code and data as the calico-ipam plugin);
// any other IPAM plugin is executed from CNI_PATH as the spec says.
//
// Beyond upstream: every command is idempotent (a repeated ADD returns the
// same result and creates nothing twice, and re-plumbs a lost interface
// with the same addresses), a failed ADD undoes everything it did, DEL
// succeeds whatever is already gone, and CHECK really checks the kernel,
// the endpoint record and the IPAM handle. CNI_NETNS naming the plugin's
// own namespace is refused before anything is touched. A host veth is
// never taken over or deleted unless it is provably the container's: when
// upstream's name ("cali" + 11 characters of the container ID) is held by
// another live workload, the ADD uses "cali" + 11 hex digits of the ID's
// SHA-1 and records it on the endpoint. The host IPAM lock is private
// (0600 in a 0700 directory) and its wait is bounded
// (ipam_lock_timeout_seconds, default 60).
//
// It imports the dataplane, the datastore client and IPAM through their
// internal packages; it never shells out and never imports another applet.
package cni

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/version"
)

const component = "calico"

// notInitialised says why ClusterInformation may be missing and what to do.
const notInitialised = "the datastore is not initialised: start calico-node on a node (it initialises the datastore), or make the first calicoctl write, e.g. apply the IPPool"

// Main runs the plugin with the environment and stdin of the process.
func Main(args []string) int {
	// The CNI library compares the plugin's own namespace with CNI_NETNS
	// on this thread; keep the main goroutine on it.
	runtime.LockOSThread()
	for _, a := range args {
		if a == "-v" || a == "--version" || a == "version" {
			fmt.Println(version.Version)
			return 0
		}
	}
	// Like upstream, ignore CNI_ARGS we do not know, in this process and in
	// a delegated IPAM plugin (which inherits the environment).
	if a := os.Getenv("CNI_ARGS"); !strings.Contains(a, "IgnoreUnknown=") {
		if a != "" {
			a += ";"
		}
		os.Setenv("CNI_ARGS", a+"IgnoreUnknown=1")
	}
	p := &plugin{
		env:   cniipam.Env{Getenv: os.Getenv, Stderr: os.Stderr, ReadFile: os.ReadFile, Hostname: os.Hostname},
		start: time.Now(),
	}
	defer p.close()
	e := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:    p.add,
		Del:    p.del,
		Check:  p.check,
		GC:     p.gc,
		Status: p.status,
	}, cniversion.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "Calico CNI plugin "+version.Version)
	if e != nil {
		cid := os.Getenv("CNI_CONTAINERID")
		if len(cid) > maxContainerID {
			cid = cid[:maxContainerID] + "..."
		}
		p.logger().Error("calico CNI plugin failed", "command", os.Getenv("CNI_COMMAND"), "container", cid, "code", e.Code, "msg", e.Msg, "details", e.Details)
		if err := e.Print(); err != nil {
			fmt.Fprintf(os.Stderr, "calico: write error JSON: %v\n", err)
		}
		return 1
	}
	return 0
}

// plugin is one invocation.
type plugin struct {
	env   cniipam.Env
	start time.Time
	// hostNS is the node's network namespace path: "", the namespace the
	// plugin runs in, as the CNI spec has it. (A field so that the
	// plumbing calls say which namespace they act on.)
	hostNS string
	s      *cniipam.Session
}

func (p *plugin) close() {
	if p.s != nil {
		p.s.Close()
	}
}

func (p *plugin) logger() *slog.Logger {
	if p.s != nil {
		return p.s.Log
	}
	return cniipam.BootstrapLogger(p.env.Stderr, component)
}

// request is what every command derives from its arguments.
type request struct {
	args  *skel.CmdArgs
	s     *cniipam.Session
	conf  *cniconf.NetConf
	cargs cniconf.Args
	node  string
	// The workload endpoint: its identifiers, name and namespace.
	ids    api.WorkloadEndpointIdentifiers
	wepNS  string
	wepKey string
	// hostIf is the host-side veth name: upstream's (hostVethName), or
	// the endpoint's recorded one, or altVethName when upstream's is held
	// by another workload.
	hostIf string
	// handle and legacy are the IPAM handles (calico-ipam only).
	handle, legacy string
	// inproc: IPAM is Calico's, run in-process; otherwise it is the
	// plugin conf.IPAM.Type found in CNI_PATH.
	inproc bool
}

// prepare parses and checks everything an ADD, DEL or CHECK needs before
// it touches the datastore or the kernel: first that CNI_NETNS is not the
// plugin's own namespace, then the netconf (name length, MTU range),
// CNI_ARGS, the node name, the IPAM plugin, the endpoint's name and the
// network's profile.
func (p *plugin) prepare(args *skel.CmdArgs) (*request, error) {
	if err := refuseOwnNetNS(p.hostNS, args.Netns); err != nil {
		return nil, err
	}
	s, err := cniipam.Open(p.env, component, args.StdinData)
	if err != nil {
		return nil, err
	}
	p.s = s
	r := &request{args: args, s: s, conf: s.Conf}
	if r.cargs, err = cniconf.ParseArgs(args.Args); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	if err := checkFeatures(r.conf); err != nil {
		return nil, err
	}
	if r.node, err = s.NodeName(); err != nil {
		return nil, err
	}
	if err := checkIPAMType(r.conf, args.Path); err != nil {
		return nil, err
	}
	r.inproc = r.conf.IPAM.Type == cniipam.PluginType
	if err := r.identify(); err != nil {
		return nil, err
	}
	if err := validProfileName(r.conf.Name); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(`netconf field "name": %s cannot name a Calico profile: %s`, cniconf.Quote(r.conf.Name), cniconf.Quote(err.Error())), "")
	}
	r.handle, r.legacy = cniipam.Handles(r.conf.Name, args.ContainerID, r.cargs)
	return r, nil
}

// validProfileName checks that the network name can name its profile and
// the label the profile applies (the rest of the profile is ours), so that
// a bad name fails before anything is allocated or plumbed.
func validProfileName(name string) error {
	if err := api.ValidateName("metadata.name", name); err != nil {
		return err
	}
	return api.ValidateLabels("spec.labelsToApply", map[string]string{name: ""})
}

// checkFeatures refuses the feature_control switches this plugin does not
// implement. Upstream applies both to Kubernetes pod annotations
// (cni.projectcalico.org/ipAddrsNoIpam, floatingIPs), which an etcd-only
// plugin never reads; silently ignoring them would hand out addresses the
// user did not ask for.
func checkFeatures(c *cniconf.NetConf) error {
	f := c.FeatureControl
	switch {
	case f.IPAddrsNoIPAM:
		return types.NewError(types.ErrInvalidNetworkConfig, `netconf field "feature_control.ip_addrs_no_ipam": not supported: it enables the Kubernetes annotation cni.projectcalico.org/ipAddrsNoIpam, which this etcd-only plugin does not read; remove it, and give a fixed address with CNI_ARGS IP=<address> (allocated through Calico IPAM)`, "")
	case f.FloatingIPs:
		return types.NewError(types.ErrInvalidNetworkConfig, `netconf field "feature_control.floating_ips": not supported: it enables the Kubernetes annotation cni.projectcalico.org/floatingIPs, which this etcd-only plugin does not read; remove it`, "")
	}
	return nil
}

// checkIPAMType refuses a netconf without an IPAM plugin, or naming one
// that is not in CNI_PATH (calico-ipam runs in-process and needs none).
func checkIPAMType(conf *cniconf.NetConf, cniPath string) error {
	t := conf.IPAM.Type
	if t == "" {
		return types.NewError(types.ErrInvalidNetworkConfig, `netconf field "ipam.type": missing: set it to "calico-ipam" (or another IPAM plugin in CNI_PATH)`, "")
	}
	if t == cniipam.PluginType {
		return nil
	}
	if _, err := invoke.FindInPath(t, filepath.SplitList(cniPath)); err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(`netconf field "ipam.type": IPAM plugin %q not found in CNI_PATH %q: install it there or use "calico-ipam"`, t, cniPath), "")
	}
	return nil
}

// identify names the workload as upstream does: orchestrator k8s (WEP
// <node>-k8s-<pod>-<if> in the pod's namespace, host veth from a hash of
// namespace.pod) when CNI_ARGS carries K8S_POD_NAMESPACE and K8S_POD_NAME,
// else orchestrator cni (WEP <node>-cni-<containerID>-<if> in namespace
// default, host veth from the container ID).
func (r *request) identify() error {
	a := r.args
	if len(a.ContainerID) > maxContainerID {
		// Nothing bounds CNI_CONTAINERID before here; it could not name an
		// endpoint anyway, and is not echoed at length.
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_CONTAINERID %s is %d bytes long, more than %d: it cannot name a workload endpoint", cniconf.Quote(a.ContainerID), len(a.ContainerID), maxContainerID), "")
	}
	r.ids = api.WorkloadEndpointIdentifiers{Node: r.node, Endpoint: a.IfName, ContainerID: a.ContainerID}
	if r.cargs.K8sPodNamespace != "" && r.cargs.K8sPodName != "" {
		r.ids.Orchestrator, r.ids.Pod, r.wepNS = api.OrchestratorK8s, r.cargs.K8sPodName, r.cargs.K8sPodNamespace
	} else {
		r.ids.Orchestrator, r.wepNS = api.OrchestratorCNI, "default"
	}
	r.hostIf = hostVethName(a.ContainerID, r.cargs)
	name, err := api.WorkloadEndpointName(r.ids)
	if err == nil {
		err = api.ValidateMeta(wepKind(), &api.ObjectMeta{Name: name, Namespace: r.wepNS})
	}
	if err != nil {
		code := uint(types.ErrInvalidEnvironmentVariables)
		var fe *api.FieldError
		if errors.As(err, &fe) && fe.Field == "node" {
			code = types.ErrInvalidNetworkConfig
		}
		return types.NewError(code, "name the workload endpoint: "+err.Error(), "")
	}
	r.wepKey = wepKind().Key(r.wepNS, name)
	return nil
}

// maxContainerID bounds CNI_CONTAINERID: a resource name has at most 253
// characters, and the endpoint's name contains the ID.
const maxContainerID = 253

// wepName is the endpoint's name (the last segment of its key).
func (r *request) wepName() string { return r.wepKey[strings.LastIndexByte(r.wepKey, '/')+1:] }

// phases records how long each step of a command took, for the debug log.
type phases struct {
	last time.Time
	list []any // name, duration, name, duration, ...
}

func newPhases(start time.Time) *phases { return &phases{last: start} }

func (ph *phases) mark(name string) {
	now := time.Now()
	ph.list = append(ph.list, name, now.Sub(ph.last))
	ph.last = now
}

// logDone logs, at debug level, where a command's time went (from Main to
// now, by phase) and its datastore round trips.
func (p *plugin) logDone(r *request, cmd string, ph *phases, extra ...any) {
	if !r.s.Debug() {
		return
	}
	attrs := append([]any{"container", r.args.ContainerID}, extra...)
	attrs = append(attrs, ph.list...)
	attrs = append(attrs, "main", time.Since(p.start))
	if r.s.Store != nil {
		trips, calls := r.s.Store.Trips()
		var sum time.Duration
		for _, c := range calls {
			sum += c
		}
		attrs = append(attrs, "trips", trips, "datastore", sum, "requests", calls)
	}
	r.s.Log.Debug(cmd+" done", attrs...)
}
