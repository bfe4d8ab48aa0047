package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/selector"
)

// Default paths, as upstream's container uses them.
const (
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultMTUFile      = "/var/lib/calico/mtu"
	DefaultRunDir       = "/var/run/calico"
	// ControlSocketName is the status socket's file name in the run dir.
	ControlSocketName = "calico-node.ctl"
)

// Networking backends (CALICO_NETWORKING_BACKEND).
const (
	BackendBird  = "bird"
	BackendVXLAN = "vxlan"
	BackendNone  = "none"
)

// TunnelKind is the kind of tunnel address a node holds.
type TunnelKind int

// Tunnel kinds.
const (
	TunnelVXLAN TunnelKind = iota + 1
	TunnelIPIP
	TunnelVXLANV6 // the IPv6 VXLAN tunnel address (ipv6VXLANTunnelAddr)
)

func (k TunnelKind) String() string {
	switch k {
	case TunnelVXLAN:
		return "vxlan"
	case TunnelIPIP:
		return "ipip"
	case TunnelVXLANV6:
		return "vxlan-v6"
	}
	return "unknown"
}

// TunnelAddresser allocates and releases a node's tunnel addresses in IPAM.
// pools are the CIDRs of the pools that may be used, most preferred first.
// EnsureTunnelAddress returns the address the node already holds for kind
// if it has one in those pools, else allocates one. The IPAM allocator
// satisfies it through a small adapter in the applet.
type TunnelAddresser interface {
	EnsureTunnelAddress(ctx context.Context, host string, kind TunnelKind, pools []string) (netip.Addr, error)
	ReleaseTunnelAddress(ctx context.Context, host string, kind TunnelKind) error
}

// DefaultPool configures the IPv4 pool created at startup when no pool
// exists (CALICO_IPV4POOL_*).
type DefaultPool struct {
	CIDR         string // "" = 192.168.0.0/16; "none" = no pool
	BlockSize    int    // 0 = 26
	IPIPMode     string // "" = by backend: Always with bird, else Never
	VXLANMode    string // "" = by backend: Always with vxlan, else Never
	NATOutgoing  *bool  // nil = true
	NodeSelector string // "" = all()
}

// Config is everything the daemon is told. Only the applet's Main builds
// it (from flags and the environment); Validate checks it before any work.
type Config struct {
	// Store is the datastore. Required.
	Store kv.Store
	// NodeName is this node's name. Required.
	NodeName string
	// NetNS is the network namespace (a path) every kernel call, listener
	// and autodetection probe is bound to; "" is the process's own.
	NetNS string

	NodenameFile string // "" = DefaultNodenameFile
	MTUFile      string // "" = DefaultMTUFile
	RunDir       string // "" = DefaultRunDir; the control socket lives here

	// IP is "autodetect", "none", "" (autodetect only if the Node has no
	// address) or an address with or without prefix length.
	IP               string
	IPAutodetect     string // IP_AUTODETECTION_METHOD; "" = first-found
	IP6              string // like IP but only "autodetect" or an address turns it on
	IP6Autodetect    string
	AS               string // "" = leave the Node's AS as it is
	Backend          string // bird (default), vxlan or none
	DefaultPool      DefaultPool
	DefaultPoolV6    DefaultPool // CALICO_IPV6POOL_*; IPIPMode unused (config6.go)
	NoDefaultPools   bool
	FelixOverrides   map[string]string // FELIX_<NAME> settings, keys without the prefix
	Tunnels          TunnelAddresser   // nil: tunnel addresses are managed elsewhere
	Logger           *slog.Logger      // nil: discard
	LogLevel         *slog.LevelVar    // set from logSeverityScreen; may be nil
	StartupOnly      bool              // register the node and exit
	DisableListeners bool              // no health/metrics TCP listeners (control socket only)
	ClusterType      string            // CLUSTER_TYPE: added to ClusterInformation clusterType
	BGPSecretDir     string            // "" = DefaultBGPSecretDir; BGP passwords as <dir>/<secret>/<key>
	// Kernel is what the dataplane is applied to; nil is the kernel of
	// NetNS. The scale harness sets one that records instead (kernel.go).
	Kernel Kernel
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

func cfgErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
}

// Validate checks everything that can be checked without I/O, so a
// mistake is reported before anything is written. (New also requires a
// Store.)
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.NodeName == "" {
		add(cfgErr("no node name: set NODENAME"))
	} else if err := api.ValidateName("NODENAME", c.NodeName); err != nil {
		add(cfgErr("NODENAME %q: %v", c.NodeName, err))
	}
	switch c.Backend {
	case "", BackendBird, BackendVXLAN, BackendNone:
	default:
		add(cfgErr("CALICO_NETWORKING_BACKEND=%q: want bird, vxlan or none", c.Backend))
	}
	add(validateIPSetting("IP", c.IP, 4))
	add(validateIPSetting("IP6", c.IP6, 6))
	if _, err := ParseAutodetectMethod(c.IPAutodetect); err != nil {
		add(cfgErr("IP_AUTODETECTION_METHOD: %v", err))
	}
	if _, err := ParseAutodetectMethod(c.IP6Autodetect); err != nil {
		add(cfgErr("IP6_AUTODETECTION_METHOD: %v", err))
	}
	if c.AS != "" {
		if _, err := api.ParseASNumber(c.AS); err != nil {
			add(cfgErr("AS=%q: want a number such as 64512 or dotted 1.10", c.AS))
		}
	}
	if c.NoDefaultPools && c.DefaultPool.CIDR != "" && c.DefaultPool.CIDR != "none" {
		add(cfgErr("NO_DEFAULT_POOLS=true conflicts with CALICO_IPV4POOL_CIDR=%s: set only one", c.DefaultPool.CIDR))
	}
	if !c.NoDefaultPools && c.DefaultPool.CIDR != "none" {
		if _, err := c.defaultPool(); err != nil {
			add(err)
		}
	}
	add(c.validate6())
	if s, _, err := felixEnvLayer(c.FelixOverrides); err != nil {
		add(cfgErr("%v", err))
	} else if _, err := resolveFelix(s); err != nil {
		add(cfgErr("FELIX_* environment: %v", err))
	}
	return errors.Join(errs...)
}

func validateIPSetting(name, v string, version int) error {
	switch v {
	case "", "autodetect", "none":
		return nil
	}
	p, err := api.ParseAddrOrCIDR(v)
	if err != nil || (version == 4) != p.Addr().Is4() {
		return cfgErr("%s=%q: want autodetect, none, or an IPv%d address such as %s", name, v, version, map[int]string{4: "10.0.0.11/24", 6: "fd00::11/64"}[version])
	}
	return nil
}

func (c *Config) backend() string {
	if c.Backend == "" {
		return BackendBird
	}
	return c.Backend
}

// defaultPool builds the IPPool created when none exists.
func (c *Config) defaultPool() (*api.IPPool, error) {
	d := c.DefaultPool
	cidr := d.CIDR
	if cidr == "" {
		cidr = "192.168.0.0/16"
	}
	pfx, err := api.ParseCIDR(cidr)
	if err != nil || !pfx.Addr().Is4() {
		return nil, cfgErr("CALICO_IPV4POOL_CIDR=%q: want an IPv4 CIDR such as 192.168.0.0/16", d.CIDR)
	}
	bs := d.BlockSize
	if bs == 0 {
		bs = api.DefaultBlockSizeV4
	}
	if bs < api.MinBlockSizeV4 || bs > 32 {
		return nil, cfgErr("CALICO_IPV4POOL_BLOCK_SIZE=%d: want 20-32", bs)
	}
	ipip, err := parseMode("CALICO_IPV4POOL_IPIP", d.IPIPMode)
	if err != nil {
		return nil, err
	}
	vxlan, err := parseMode("CALICO_IPV4POOL_VXLAN", d.VXLANMode)
	if err != nil {
		return nil, err
	}
	// Upstream's manifests pair the backend with an encapsulation
	// (calico.yaml: bird + IPIP Always; calico-vxlan.yaml: vxlan + VXLAN
	// Always); when neither mode is given we do the same.
	if d.IPIPMode == "" && d.VXLANMode == "" {
		switch c.backend() {
		case BackendBird:
			ipip = "Always"
		case BackendVXLAN:
			vxlan = "Always"
		}
	}
	if ipip != "Never" && vxlan != "Never" {
		return nil, cfgErr("CALICO_IPV4POOL_IPIP=%s and CALICO_IPV4POOL_VXLAN=%s: a pool uses at most one encapsulation", ipip, vxlan)
	}
	if d.NodeSelector != "" {
		if err := selector.Validate(d.NodeSelector); err != nil {
			return nil, cfgErr("CALICO_IPV4POOL_NODE_SELECTOR: %v", err)
		}
	}
	nat := true
	if d.NATOutgoing != nil {
		nat = *d.NATOutgoing
	}
	p := api.NewIPPool()
	p.Name = "default-ipv4-ippool"
	p.Spec.CIDR = pfx.String()
	p.Spec.BlockSize = bs
	p.Spec.IPIPMode = api.IPIPMode(ipip)
	p.Spec.VXLANMode = api.VXLANMode(vxlan)
	p.Spec.NATOutgoing = nat
	p.Spec.NodeSelector = d.NodeSelector
	return p, nil
}

// parseMode reads an encapsulation mode as upstream's startup does.
func parseMode(env, v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "off", "never":
		return "Never", nil
	case "always":
		return "Always", nil
	case "crosssubnet", "cross-subnet":
		return "CrossSubnet", nil
	}
	return "", cfgErr("%s=%q: want Always, CrossSubnet or Never", env, v)
}

// ParseBool reads the boolean forms upstream accepts in its environment.
func ParseBool(name, v string) (bool, error) {
	b, err := parseBool(strings.TrimSpace(v))
	if err != nil {
		return false, cfgErr("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// parseBool reads the boolean forms upstream's startup accepts in CALICO_*
// variables (FELIX_* values are read by api's parser).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "y", "t", "on", "enabled":
		return true, nil
	case "false", "0", "no", "n", "f", "off", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// ParseBlockSize reads CALICO_IPV4POOL_BLOCK_SIZE.
func ParseBlockSize(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, cfgErr("CALICO_IPV4POOL_BLOCK_SIZE=%q: want a number 20-32", v)
	}
	return n, nil
}
