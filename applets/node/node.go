// Package node is the calico-node applet: the node daemon. With no
// arguments it runs the daemon configured from the environment, as
// upstream's container does; every environment variable has a flag of the
// same meaning (flags win). Main is the only place that reads flags and the
// environment and maps errors to exit codes; the work is in internal/agent.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/startup"
	"github.com/onecalico/calico/internal/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs calico-node with the arguments after the program name.
func Main(args []string) int {
	startup.Restore()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Stdout, os.Stderr, os.Getenv, os.Environ, args)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "calico-node: %v\nRun 'calico-node --help' for the flags.\n", err)
		return exitUsage
	case errors.Is(err, errQuiet):
		return exitError
	default:
		fmt.Fprintf(os.Stderr, "calico-node: %v\n", err)
		return exitError
	}
}

type usageError struct{ error }

// errQuiet ends the program with exit 1 after the output said everything.
var errQuiet = errors.New("quiet failure")

// options are the flags; each defaults to its environment variable.
type options struct {
	nodename, ip, ip6, ipMethod, ip6Method, as, backend string
	poolCIDR, poolBlockSize, poolIPIP, poolVXLAN        string
	poolNAT, poolSelector                               string
	pool6CIDR, pool6BlockSize, pool6VXLAN, pool6NAT     string
	pool6Selector                                       string
	noDefaultPools                                      bool
	etcdEndpoints, etcdCA, etcdCert, etcdKey, etcdUser  string
	nodenameFile, mtuFile, runDir, netns                string
	healthHost, healthPort, metricsHost, metricsPort    string
	logLevel, logFormat, clusterType                    string
	startupOnly, showVersion, checkReady, checkLive     bool
}

// upstreamModes maps upstream's single-dash modes to our flags.
var upstreamModes = map[string]string{
	"-startup":     "--startup",
	"-v":           "--version",
	"-version":     "--version",
	"-felix-ready": "--check-ready",
	"-felix-live":  "--check-live",
}

func run(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string, environ func() []string, args []string) error {
	for i, a := range args {
		if m, ok := upstreamModes[a]; ok {
			args[i] = m
		}
	}
	var o options
	fs := pflag.NewFlagSet("calico-node", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, flag, envName, def, usage string) {
		fs.StringVar(p, flag, env(envName, def), usage+" (env "+envName+")")
	}
	str(&o.nodename, "nodename", "NODENAME", "", "this node's name; default $HOSTNAME, then the host name")
	str(&o.ip, "ip", "IP", "", "IPv4 address: autodetect, none, or a.b.c.d[/nn]; empty = autodetect unless the Node has one")
	str(&o.ip6, "ip6", "IP6", "", "IPv6 address: autodetect, none, or an address[/nn]")
	str(&o.ipMethod, "ip-autodetection-method", "IP_AUTODETECTION_METHOD", "first-found", "first-found, interface=REGEX, skip-interface=REGEX, can-reach=DEST or cidr=CIDR,...")
	str(&o.ip6Method, "ip6-autodetection-method", "IP6_AUTODETECTION_METHOD", "first-found", "like --ip-autodetection-method, for IPv6")
	str(&o.as, "as", "AS", "", "this node's BGP AS number")
	str(&o.backend, "networking-backend", "CALICO_NETWORKING_BACKEND", agent.BackendBird, "bird, vxlan or none")
	str(&o.poolCIDR, "ipv4pool-cidr", "CALICO_IPV4POOL_CIDR", "", "CIDR of the default IPv4 pool (default 192.168.0.0/16; none = no pool)")
	str(&o.poolBlockSize, "ipv4pool-block-size", "CALICO_IPV4POOL_BLOCK_SIZE", "", "block size of the default pool (default 26)")
	str(&o.poolIPIP, "ipv4pool-ipip", "CALICO_IPV4POOL_IPIP", "", "ipipMode of the default pool: Always, CrossSubnet, Never (default: Always with bird)")
	str(&o.poolVXLAN, "ipv4pool-vxlan", "CALICO_IPV4POOL_VXLAN", "", "vxlanMode of the default pool: Always, CrossSubnet, Never (default: Always with vxlan)")
	str(&o.poolNAT, "ipv4pool-nat-outgoing", "CALICO_IPV4POOL_NAT_OUTGOING", "", "natOutgoing of the default pool (default true)")
	str(&o.poolSelector, "ipv4pool-node-selector", "CALICO_IPV4POOL_NODE_SELECTOR", "", "nodeSelector of the default pool (default all())")
	str(&o.pool6CIDR, "ipv6pool-cidr", "CALICO_IPV6POOL_CIDR", "", "CIDR of the default IPv6 pool, created when IPv6 is on (IP6 set or this set; default a random fdXX:XXXX:XXXX::/48; none = no pool)")
	str(&o.pool6BlockSize, "ipv6pool-block-size", "CALICO_IPV6POOL_BLOCK_SIZE", "", "block size of the default IPv6 pool (default 122)")
	str(&o.pool6VXLAN, "ipv6pool-vxlan", "CALICO_IPV6POOL_VXLAN", "", "vxlanMode of the default IPv6 pool: Always, CrossSubnet, Never (default Never)")
	str(&o.pool6NAT, "ipv6pool-nat-outgoing", "CALICO_IPV6POOL_NAT_OUTGOING", "", "natOutgoing of the default IPv6 pool (default false)")
	str(&o.pool6Selector, "ipv6pool-node-selector", "CALICO_IPV6POOL_NODE_SELECTOR", "", "nodeSelector of the default IPv6 pool (default all())")
	noPools, err := envBool(getenv, "NO_DEFAULT_POOLS")
	if err != nil {
		return usageError{err}
	}
	fs.BoolVar(&o.noDefaultPools, "no-default-pools", noPools, "create no default pool (env NO_DEFAULT_POOLS)")
	str(&o.etcdEndpoints, "etcd-endpoints", "ETCD_ENDPOINTS", "", "etcd URLs, comma-separated (http://, https://, unix://); ETCD_PASSWORD is read from the environment only")
	str(&o.etcdCA, "etcd-ca-cert-file", "ETCD_CA_CERT_FILE", "", "etcd CA certificate file")
	str(&o.etcdCert, "etcd-cert-file", "ETCD_CERT_FILE", "", "etcd client certificate file")
	str(&o.etcdKey, "etcd-key-file", "ETCD_KEY_FILE", "", "etcd client key file")
	str(&o.etcdUser, "etcd-username", "ETCD_USERNAME", "", "etcd user name")
	str(&o.nodenameFile, "nodename-file", "CALICO_NODENAME_FILE", agent.DefaultNodenameFile, "file the node name is written to (read by the CNI plugin)")
	str(&o.mtuFile, "mtu-file", "CALICO_MTU_FILE", agent.DefaultMTUFile, "file the pod MTU is written to (read by the CNI plugin)")
	str(&o.runDir, "run-dir", "CALICO_RUN_DIR", agent.DefaultRunDir, "directory of the control socket "+agent.ControlSocketName)
	str(&o.netns, "netns", "CALICO_NETNS", "", "network namespace (path) to program instead of the process's own")
	str(&o.healthHost, "health-host", "FELIX_HEALTHHOST", "", "health server host (FelixConfiguration healthHost; default localhost)")
	str(&o.healthPort, "health-port", "FELIX_HEALTHPORT", "", "health server port, 0 = off (FelixConfiguration healthPort; default 9099)")
	str(&o.metricsHost, "metrics-host", "FELIX_PROMETHEUSMETRICSHOST", "", "metrics server host, when metrics are on (FELIX_PROMETHEUSMETRICSENABLED=true; default all addresses)")
	str(&o.metricsPort, "metrics-port", "FELIX_PROMETHEUSMETRICSPORT", "", "metrics server port, when metrics are on (FELIX_PROMETHEUSMETRICSENABLED=true; default 9091)")
	str(&o.logLevel, "log-level", "FELIX_LOGSEVERITYSCREEN", "", "Debug, Info, Warning, Error or None (FelixConfiguration logSeverityScreen; default Info)")
	str(&o.logFormat, "log-format", "CALICO_LOG_FORMAT", "text", "text or json")
	str(&o.clusterType, "cluster-type", "CLUSTER_TYPE", "", "cluster types added to ClusterInformation clusterType, comma-separated (e.g. k8s,bgp)")
	fs.BoolVar(&o.startupOnly, "startup", false, "register the node (address, pools, FelixConfiguration, tunnel addresses), write the nodename file and exit (upstream -startup)")
	fs.BoolVarP(&o.showVersion, "version", "v", false, "print the version and exit")
	fs.BoolVar(&o.checkReady, "check-ready", false, "exit 0 if the running daemon is ready, else 1 (upstream -felix-ready)")
	fs.BoolVar(&o.checkLive, "check-live", false, "exit 0 if the running daemon is live, else 1 (upstream -felix-live)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: calico-node [flags]\n\nRuns the Calico node daemon, configured from the environment; every variable has a flag, and flags win.\nFELIX_<FIELD> variables override FelixConfiguration fields (e.g. FELIX_VXLANVNI).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if o.showVersion {
		fmt.Fprintln(stdout, version.Version)
		return nil
	}
	if o.checkReady || o.checkLive {
		return check(ctx, stdout, o)
	}

	level := new(slog.LevelVar)
	var h slog.Handler
	switch o.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		return usageError{fmt.Errorf("--log-format %q: want text or json", o.logFormat)}
	}
	logger := slog.New(h)

	cfg, closeStore, err := buildConfig(o, getenv, environ, logger, level)
	if err != nil {
		return err
	}
	defer closeStore()
	a, err := agent.New(cfg)
	if err != nil {
		if errors.Is(err, agent.ErrConfig) {
			return usageError{err}
		}
		return err
	}
	return runNotified(ctx, a, getenv, logger.With("component", "sdnotify").Warn)
}

func envBool(getenv func(string) string, name string) (bool, error) {
	v := getenv(name)
	if v == "" {
		return false, nil
	}
	return agent.ParseBool(name, v)
}

// buildConfig turns the options and environment into the agent's Config,
// connecting the datastore last (so bad settings are reported first).
func buildConfig(o options, getenv func(string) string, environ func() []string, logger *slog.Logger, level *slog.LevelVar) (agent.Config, func(), error) {
	cfg := agent.Config{
		NodeName:      nodeName(o.nodename, getenv),
		NetNS:         o.netns,
		NodenameFile:  o.nodenameFile,
		MTUFile:       o.mtuFile,
		RunDir:        o.runDir,
		IP:            o.ip,
		IPAutodetect:  o.ipMethod,
		IP6:           o.ip6,
		IP6Autodetect: o.ip6Method,
		AS:            o.as,
		Backend:       strings.ToLower(o.backend),
		DefaultPool: agent.DefaultPool{
			CIDR:         o.poolCIDR,
			IPIPMode:     o.poolIPIP,
			VXLANMode:    o.poolVXLAN,
			NodeSelector: o.poolSelector,
		},
		DefaultPoolV6: agent.DefaultPool{
			CIDR:         o.pool6CIDR,
			VXLANMode:    o.pool6VXLAN,
			NodeSelector: o.pool6Selector,
		},
		NoDefaultPools: o.noDefaultPools,
		FelixOverrides: map[string]string{},
		Logger:         logger,
		LogLevel:       level,
		StartupOnly:    o.startupOnly,
		ClusterType:    o.clusterType,
		BGPSecretDir:   getenv("CALICO_BGP_SECRET_DIR"),
	}
	bs, err := agent.ParseBlockSize(o.poolBlockSize)
	if err != nil {
		return cfg, nil, usageError{err}
	}
	cfg.DefaultPool.BlockSize = bs
	if o.poolNAT != "" {
		b, err := agent.ParseBool("CALICO_IPV4POOL_NAT_OUTGOING", o.poolNAT)
		if err != nil {
			return cfg, nil, usageError{err}
		}
		cfg.DefaultPool.NATOutgoing = &b
	}
	if err := pool6Options(o, &cfg.DefaultPoolV6); err != nil {
		return cfg, nil, err
	}
	for _, kv := range environ() {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, "FELIX_"); ok && name != "" {
			cfg.FelixOverrides[strings.ToLower(name)] = v
		}
	}
	// Flags for FelixConfiguration fields win over both the datastore and
	// the FELIX_* variables they default to.
	for name, v := range map[string]string{
		"healthhost": o.healthHost, "healthport": o.healthPort,
		"prometheusmetricshost": o.metricsHost, "prometheusmetricsport": o.metricsPort,
		"logseverityscreen": o.logLevel,
	} {
		if v != "" {
			cfg.FelixOverrides[name] = v
		}
	}
	if o.logLevel != "" {
		l, err := agent.ParseLogLevel(o.logLevel)
		if err != nil {
			return cfg, nil, usageError{fmt.Errorf("--log-level %q: %v", o.logLevel, err)}
		}
		level.Set(l)
	}
	switch t := strings.ToLower(getenv("DATASTORE_TYPE")); t {
	case "", "etcdv3":
	case "kubernetes":
		return cfg, nil, usageError{errors.New("DATASTORE_TYPE=kubernetes is not supported: use etcdv3 and set ETCD_ENDPOINTS")}
	default:
		return cfg, nil, usageError{fmt.Errorf("DATASTORE_TYPE=%q: want etcdv3", t)}
	}
	ec := etcd.ConfigFromEnv(getenv)
	ec.Endpoints = etcd.SplitEndpoints(o.etcdEndpoints)
	ec.CACertFile, ec.CertFile, ec.KeyFile, ec.Username = o.etcdCA, o.etcdCert, o.etcdKey, o.etcdUser
	if err := ec.Validate(); err != nil {
		return cfg, nil, usageError{err}
	}
	// Check everything else before connecting.
	if err := cfg.Validate(); err != nil {
		return cfg, nil, usageError{err}
	}
	st, err := etcd.New(ec)
	if err != nil {
		return cfg, nil, err
	}
	cfg.Store = st
	cfg.Tunnels = tunnelAddresser{ipam.New(st, ipam.Options{Logger: logger.With("component", "ipam")})}
	return cfg, func() { st.Close() }, nil
}

// nodeName is upstream's rule: NODENAME, else HOSTNAME, else the host
// name; trimmed and lower-cased.
func nodeName(flag string, getenv func(string) string) string {
	n := flag
	if n == "" {
		n = getenv("HOSTNAME")
	}
	if n == "" {
		n, _ = os.Hostname()
	}
	return strings.ToLower(strings.TrimSpace(n))
}

// check answers --check-ready/--check-live through the control socket.
func check(ctx context.Context, stdout io.Writer, o options) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := agent.QueryStatus(ctx, filepath.Join(o.runDir, agent.ControlSocketName))
	if err != nil {
		return err
	}
	ok := s.Live
	what := "live"
	if o.checkReady {
		ok, what = s.Live && s.Ready, "ready"
	}
	fmt.Fprintf(stdout, "calico-node %s: %s\n", what, strconv.FormatBool(ok))
	if !ok {
		return errQuiet
	}
	return nil
}
