// Package install is the `calico install` applet: one command per node
// that puts the binary, its applet links, the CNI plugin links, the CNI
// conflist, calicoctl.cfg, calico-node's environment file and its systemd
// unit in place (internal/install does the work), and `--uninstall` that
// takes them away again. Main is the only place that reads flags and the
// environment and maps errors to exit codes.
package install

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/datastore/etcd"
	inst "github.com/onecalico/calico/internal/install"
	"github.com/onecalico/calico/internal/startup"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// DefaultManifest is where the record of installed files lives.
const DefaultManifest = "/var/lib/calico/install-manifest.json"

// Main runs `calico install` with the arguments after "install".
func Main(args []string) int {
	startup.Restore()
	err := run(os.Stdout, os.Stderr, os.Getenv, args)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "calico install: %v\nRun 'calico install --help' for the flags.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(os.Stderr, "calico install: %v\n", err)
		return exitError
	}
}

type usageError struct{ error }

// options are the flags that are not fields of inst.Config.
type options struct {
	root, manifest, endpoints, portmap string
	dryRun, uninstall, force           bool
	env                                []string
}

// nodeSetting is a flag written to the environment file as its variable.
type nodeSetting struct{ flag, env, usage string }

var nodeSettings = []nodeSetting{
	{"nodename", "NODENAME", "this node's name (default: calico-node uses the host name)"},
	{"ip", "IP", "IPv4 address: autodetect, none, or a.b.c.d/nn"},
	{"ip6", "IP6", "IPv6 address: autodetect, none, or an address/nn"},
	{"ip-autodetection-method", "IP_AUTODETECTION_METHOD", "first-found, interface=REGEX, skip-interface=REGEX, can-reach=DEST or cidr=CIDR,..."},
	{"as", "AS", "this node's BGP AS number"},
	{"networking-backend", "CALICO_NETWORKING_BACKEND", "bird, vxlan or none"},
	{"ipv4pool-cidr", "CALICO_IPV4POOL_CIDR", "CIDR of the default IPv4 pool"},
	{"ipv4pool-block-size", "CALICO_IPV4POOL_BLOCK_SIZE", "block size of the default pool"},
	{"ipv4pool-ipip", "CALICO_IPV4POOL_IPIP", "ipipMode of the default pool"},
	{"ipv4pool-vxlan", "CALICO_IPV4POOL_VXLAN", "vxlanMode of the default pool"},
	{"ipv4pool-nat-outgoing", "CALICO_IPV4POOL_NAT_OUTGOING", "natOutgoing of the default pool"},
	{"no-default-pools", "NO_DEFAULT_POOLS", "true: calico-node creates no default pool"},
}

func run(stdout, stderr io.Writer, getenv func(string) string, args []string) error {
	var o options
	c := inst.Config{}
	fs := pflag.NewFlagSet("calico install", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&o.root, "root", "/", "install under this directory instead of / (a throwaway tree, an image)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print each file that would change (content or diff) and write nothing")
	fs.BoolVar(&o.uninstall, "uninstall", false, "remove what calico install wrote, except files changed by hand since")
	fs.BoolVar(&o.force, "force", false, "replace files calico install did not write (kept, and put back by --uninstall) and files changed by hand")
	fs.StringVar(&o.manifest, "manifest", DefaultManifest, "record of the installed files and their checksums")
	fs.StringVar(&c.Source, "source", "", "the calico binary to install (default: this program)")
	fs.StringVar(&c.BinDir, "bin-dir", "/usr/local/bin", "directory of calico, calico-node and calicoctl")
	fs.StringVar(&c.CNIBinDir, "cni-bin-dir", "/opt/cni/bin", "CNI plugin directory (calico and calico-ipam links)")
	fs.StringVar(&c.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "CNI configuration directory")
	fs.StringVar(&c.CNIConfName, "cni-conf-name", "10-calico.conflist", "CNI configuration file name")
	fs.StringVar(&c.ConfigDir, "config-dir", "/etc/calico", "directory of calicoctl.cfg and calico-node.env")
	fs.StringVar(&c.UnitDir, "unit-dir", "/etc/systemd/system", "systemd unit directory (calico-node.service)")
	fs.StringVar(&c.NetworkName, "network-name", "k8s-pod-network", "CNI network name")
	fs.StringVar(&c.CNIVersion, "cni-version", "1.0.0", "cniVersion of the conflist (containerd 1.6 and Debian's plugins support up to 1.0.0)")
	fs.IntVar(&c.MTU, "mtu", 0, "pod MTU; 0 = the MTU calico-node computes (its MTU file)")
	fs.StringVar(&o.portmap, "portmap", "auto", "chain the portmap plugin: auto (if found in --cni-bin-dir, or in /usr/lib/cni or /usr/libexec/cni, then linked), true, false")
	fs.StringVar(&c.CNILogLevel, "cni-log-level", "", "log_level of the CNI plugin (default info)")
	fs.StringVar(&c.CNILogFile, "cni-log-file", "", "log_file_path of the CNI plugin (default: the runtime's log)")
	fs.StringVar(&o.endpoints, "etcd-endpoints", getenv("ETCD_ENDPOINTS"), "etcd URLs, comma-separated (env ETCD_ENDPOINTS); ETCD_PASSWORD is read from the environment only")
	fs.StringVar(&c.Etcd.CACertFile, "etcd-ca-cert-file", getenv("ETCD_CA_CERT_FILE"), "etcd CA certificate file (env ETCD_CA_CERT_FILE)")
	fs.StringVar(&c.Etcd.CertFile, "etcd-cert-file", getenv("ETCD_CERT_FILE"), "etcd client certificate file (env ETCD_CERT_FILE)")
	fs.StringVar(&c.Etcd.KeyFile, "etcd-key-file", getenv("ETCD_KEY_FILE"), "etcd client key file (env ETCD_KEY_FILE)")
	fs.StringVar(&c.Etcd.Username, "etcd-username", getenv("ETCD_USERNAME"), "etcd user name (env ETCD_USERNAME)")
	fs.StringVar(&c.NodenameFile, "nodename-file", cniconf.DefaultNodenameFile, "node name file calico-node writes and the CNI plugin reads")
	fs.StringVar(&c.MTUFile, "mtu-file", cniconf.DefaultMTUFile, "pod MTU file calico-node writes and the CNI plugin reads")
	fs.StringVar(&c.RunDir, "run-dir", agent.DefaultRunDir, "calico-node's run directory (control socket)")
	fs.StringVar(&c.IPAMLockFile, "ipam-lock-file", cniconf.DefaultIPAMLockFile, "the CNI IPAM plugin's lock file")
	fs.DurationVar(&c.Watchdog, "watchdog", time.Minute, "WatchdogSec of the unit (calico-node pings while live); 0 = off")
	node := make([]string, len(nodeSettings))
	for i, s := range nodeSettings {
		fs.StringVar(&node[i], s.flag, "", s.usage+" (calico-node env "+s.env+")")
	}
	fs.StringArrayVar(&o.env, "env", nil, "NAME=VALUE for calico-node's environment file (repeatable; e.g. FELIX_VXLANVNI=4096)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: calico install [flags]\n\nInstalls this binary as a Calico node: calico with the calico-node and calicoctl links,\nthe calico and calico-ipam CNI plugins, the CNI conflist, calicoctl.cfg, calico-node.env and\n%s. Re-runs change nothing; --uninstall removes it all except files changed by hand.\n\nFlags:\n", inst.UnitName)
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
	if !filepath.IsAbs(o.root) || !filepath.IsAbs(o.manifest) {
		return usageError{fmt.Errorf("--root %q and --manifest %q must be absolute paths", o.root, o.manifest)}
	}
	if fi, err := os.Stat(o.root); err != nil || !fi.IsDir() {
		return usageError{fmt.Errorf("--root %s: not a directory", o.root)}
	}
	opts := inst.Options{Root: o.root, Manifest: o.manifest, DryRun: o.dryRun, Force: o.force, Out: stdout}
	if o.uninstall {
		if err := inst.Uninstall(opts); err != nil {
			return err
		}
		if !o.dryRun && o.root == "/" {
			fmt.Fprintln(stdout, "next: systemctl daemon-reload (the routes and rules of a daemon that ran stay in place)")
		}
		return nil
	}
	if err := configure(&c, o, node, getenv); err != nil {
		return usageError{err}
	}
	warnings(stderr, &c, o)
	if err := inst.Install(c.Plan(), opts); err != nil {
		return err
	}
	if !o.dryRun && o.root == "/" {
		fmt.Fprintf(stdout, "next: systemctl daemon-reload && systemctl enable --now %s\n", inst.UnitName)
	}
	return nil
}

// configure completes c from the flags and checks it.
func configure(c *inst.Config, o options, node []string, getenv func(string) string) error {
	c.Etcd.Endpoints = etcd.SplitEndpoints(o.endpoints)
	c.Etcd.Password = getenv("ETCD_PASSWORD")
	if len(c.Etcd.Endpoints) == 0 {
		return errors.New("--etcd-endpoints (or ETCD_ENDPOINTS) is required: the etcd client URLs every node uses, e.g. https://10.0.0.1:2379,https://10.0.0.2:2379")
	}
	ec := etcd.Config{Endpoints: c.Etcd.Endpoints, CACertFile: c.Etcd.CACertFile, CertFile: c.Etcd.CertFile, KeyFile: c.Etcd.KeyFile}
	if err := ec.Validate(); err != nil {
		return err
	}
	if c.Source == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this program to install it: %v; pass --source", err)
		}
		c.Source = exe
	}
	if fi, err := os.Stat(c.Source); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("--source %s: not a readable file", c.Source)
	}
	switch o.portmap {
	case "true", "false", "auto":
	default:
		return fmt.Errorf("--portmap %q: want auto, true or false", o.portmap)
	}
	c.Portmap = o.portmap == "true"
	if o.portmap == "auto" {
		c.Portmap, c.PortmapLink = findPortmap(o.root, c.CNIBinDir)
	}
	for i, s := range nodeSettings {
		if node[i] != "" {
			c.NodeEnv = append(c.NodeEnv, inst.EnvVar{Name: s.env, Value: node[i]})
		}
	}
	for _, kv := range o.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		c.NodeEnv = append(c.NodeEnv, inst.EnvVar{Name: k, Value: v})
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return checkNodeSettings(c.NodeEnv)
}

// portmapDirs are where distributions put the standard CNI plugins.
var portmapDirs = []string{"/usr/lib/cni", "/usr/libexec/cni"}

// findPortmap looks for the portmap plugin under root: in the CNI bin dir
// (a runtime runs the conflist's plugins from there), else in a
// distribution's plugin directory, which link then names.
func findPortmap(root, cniBinDir string) (found bool, link string) {
	isFile := func(p string) bool {
		fi, err := os.Stat(filepath.Join(root, p))
		return err == nil && fi.Mode().IsRegular()
	}
	if isFile(filepath.Join(cniBinDir, "portmap")) {
		return true, ""
	}
	for _, d := range portmapDirs {
		if p := filepath.Join(d, "portmap"); isFile(p) {
			return true, p
		}
	}
	return false, ""
}

// warnings prints what will not work as the operator may expect.
func warnings(stderr io.Writer, c *inst.Config, o options) {
	if o.portmap == "true" {
		if found, link := findPortmap(o.root, c.CNIBinDir); !found || link != "" {
			fmt.Fprintf(stderr, "calico install: warning: --portmap true but no portmap plugin in %s: pod creation fails until it is there (or use --portmap auto)\n", c.CNIBinDir)
		}
	}
	if o.portmap == "auto" && !c.Portmap {
		fmt.Fprintf(stderr, "calico install: warning: no portmap plugin in %s, so the conflist has no port mappings; install the CNI plugins (Debian: apt-get install containernetworking-plugins) and re-run\n", c.CNIBinDir)
	}
	if c.Etcd.Username != "" && c.Etcd.CertFile == "" {
		fmt.Fprintln(stderr, "calico install: warning: the CNI plugin cannot log in with ETCD_USERNAME/ETCD_PASSWORD (the netconf has no such fields); give it client certificates")
	}
	for _, f := range []string{c.Etcd.CACertFile, c.Etcd.CertFile, c.Etcd.KeyFile} {
		if _, err := os.Stat(filepath.Join(o.root, f)); f != "" && err != nil {
			fmt.Fprintf(stderr, "calico install: warning: %s: %v (the daemon, the plugin and calicoctl read it)\n", f, err)
		}
	}
}
