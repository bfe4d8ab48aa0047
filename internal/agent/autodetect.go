package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
)

// DefaultExcludedInterfaces are the interfaces first-found and
// skip-interface never pick (upstream's list): container bridges, veths,
// loopback, and Calico's and other CNIs' own devices.
var DefaultExcludedInterfaces = []string{
	"^docker.*", "^cbr.*", "^dummy.*", "^podman.*",
	"^virbr.*", "^lxcbr.*", "^veth.*", "^lo",
	"^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
	`^vxlan\.calico.*`, `^vxlan-v6\.calico.*`, `^wireguard\.cali.*`, `^wg-v6\.cali.*`,
}

// Autodetection method names (IP_AUTODETECTION_METHOD).
const (
	MethodFirstFound    = "first-found"
	MethodInterface     = "interface"
	MethodSkipInterface = "skip-interface"
	MethodCanReach      = "can-reach"
	MethodCIDR          = "cidr"
)

// AutodetectMethod is a parsed IP_AUTODETECTION_METHOD.
type AutodetectMethod struct {
	Kind    string
	Include *regexp.Regexp // interface=
	Exclude *regexp.Regexp // first-found, skip-interface
	CIDRs   []netip.Prefix // cidr=
	Dest    string         // can-reach=
}

// splitList splits a comma-separated setting, trimming spaces around items.
func splitList(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// ParseAutodetectMethod parses "first-found" (or ""), "interface=REGEX,...",
// "skip-interface=REGEX,...", "can-reach=DEST" or "cidr=CIDR,...". Bad
// regular expressions and CIDRs are errors here, not at detection time.
func ParseAutodetectMethod(s string) (AutodetectMethod, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == MethodFirstFound {
		return AutodetectMethod{Kind: MethodFirstFound, Exclude: joinRegexps(DefaultExcludedInterfaces)}, nil
	}
	kind, arg, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(arg) == "" {
		if s == "kubernetes-internal-ip" {
			return AutodetectMethod{}, errors.New(`"kubernetes-internal-ip" needs Kubernetes, which this build does not use: choose first-found, interface=, skip-interface=, can-reach= or cidr=`)
		}
		return AutodetectMethod{}, fmt.Errorf("%q: want first-found, interface=REGEX, skip-interface=REGEX, can-reach=DEST or cidr=CIDR", s)
	}
	arg = strings.TrimSpace(arg)
	switch kind {
	case MethodInterface, MethodSkipInterface:
		parts := splitList(arg)
		for _, p := range parts {
			if _, err := regexp.Compile(p); err != nil {
				return AutodetectMethod{}, fmt.Errorf("%s: %q is not a valid regular expression: %v", kind, p, err)
			}
		}
		if kind == MethodInterface {
			return AutodetectMethod{Kind: kind, Include: joinRegexps(parts)}, nil
		}
		return AutodetectMethod{Kind: kind, Exclude: joinRegexps(append(append([]string(nil), DefaultExcludedInterfaces...), parts...))}, nil
	case MethodCIDR:
		var cidrs []netip.Prefix
		for _, p := range splitList(arg) {
			c, err := netip.ParsePrefix(p)
			if err != nil {
				return AutodetectMethod{}, fmt.Errorf("cidr: %q is not a CIDR", p)
			}
			cidrs = append(cidrs, c.Masked())
		}
		return AutodetectMethod{Kind: kind, CIDRs: cidrs}, nil
	case MethodCanReach:
		return AutodetectMethod{Kind: kind, Dest: strings.Trim(arg, "[]")}, nil
	}
	return AutodetectMethod{}, fmt.Errorf("unknown method %q: want first-found, interface=, skip-interface=, can-reach= or cidr=", kind)
}

// joinRegexps combines patterns into one alternation, as upstream does.
func joinRegexps(ps []string) *regexp.Regexp {
	return regexp.MustCompile("(" + strings.Join(ps, ")|(") + ")")
}

func (m AutodetectMethod) String() string {
	switch m.Kind {
	case MethodFirstFound:
		return MethodFirstFound
	case MethodInterface:
		return "interface=" + m.Include.String()
	case MethodSkipInterface:
		return "skip-interface=" + m.Exclude.String()
	case MethodCIDR:
		var ss []string
		for _, c := range m.CIDRs {
			ss = append(ss, c.String())
		}
		return "cidr=" + strings.Join(ss, ",")
	case MethodCanReach:
		return "can-reach=" + m.Dest
	}
	return m.Kind
}

// ReachFunc returns the source address the kernel uses toward dest.
type ReachFunc func(dest string, version int) (netip.Addr, error)

// ErrNoAddress is wrapped when no address matches the method.
var ErrNoAddress = errors.New("no matching address")

// Detect picks this node's address of the given IP version (4 or 6) from
// ifs with method m. The result keeps the host bits ("10.0.0.11/24").
// Interfaces are scanned from the highest index down, as upstream does, and
// only global unicast addresses count. can-reach calls reach.
func (m AutodetectMethod) Detect(ifs []ifaces.Interface, version int, reach ReachFunc) (string, netip.Prefix, error) {
	if m.Kind == MethodCanReach {
		if reach == nil {
			return "", netip.Prefix{}, errors.New("can-reach: no way to probe the route")
		}
		src, err := reach(m.Dest, version)
		if err != nil {
			return "", netip.Prefix{}, fmt.Errorf("can-reach=%s: %w", m.Dest, err)
		}
		name, p, ok := LocalCIDR(ifs, src)
		if !ok {
			return "", netip.Prefix{}, fmt.Errorf("can-reach=%s: source address %s is on no local interface: %w", m.Dest, src, ErrNoAddress)
		}
		return name, p, nil
	}
	for i := len(ifs) - 1; i >= 0; i-- {
		iface := ifs[i]
		if m.Include != nil && !m.Include.MatchString(iface.Name) {
			continue
		}
		if m.Exclude != nil && m.Exclude.MatchString(iface.Name) {
			continue
		}
		for _, a := range iface.Addrs {
			ip := a.Addr()
			if (version == 4) != ip.Is4() || !isGlobalUnicast(ip) || !inAny(ip, m.CIDRs) {
				continue
			}
			return iface.Name, a, nil
		}
	}
	return "", netip.Prefix{}, fmt.Errorf("%s: no IPv%d address found on the host interfaces: %w", m, version, ErrNoAddress)
}

func isGlobalUnicast(a netip.Addr) bool {
	return a.IsGlobalUnicast()
}

func inAny(a netip.Addr, cidrs []netip.Prefix) bool {
	if len(cidrs) == 0 {
		return true
	}
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

// LocalCIDR finds ip on an interface and returns the interface and the
// address with that interface's prefix length.
func LocalCIDR(ifs []ifaces.Interface, ip netip.Addr) (string, netip.Prefix, bool) {
	for i := len(ifs) - 1; i >= 0; i-- {
		for _, a := range ifs[i].Addrs {
			if a.Addr() == ip {
				return ifs[i].Name, a, true
			}
		}
	}
	return "", netip.Prefix{}, false
}

// resolveIP applies the IP (or IP6) setting to the Node's current value:
//
//	"autodetect", or "" with no current value: detect (keep the current
//	    value with a warning if detection fails and there is one)
//	"none", or "" with a current value: keep the current value
//	an address: use it; without a prefix length, take the length of the
//	    interface that holds it (or /32, /128)
//
// It returns the new value ("" for none) and a warning for the log.
func resolveIP(setting, current string, version int, m AutodetectMethod, ifs []ifaces.Interface, reach ReachFunc) (value, warning string, err error) {
	switch {
	case setting == "autodetect" || (setting == "" && current == "" && version == 4):
		_, p, derr := m.Detect(ifs, version, reach)
		if derr == nil {
			return p.String(), "", nil
		}
		if current != "" {
			return current, fmt.Sprintf("autodetection of the IPv%d address failed (%v); keeping %s", version, derr, current), nil
		}
		return "", "", fmt.Errorf("autodetect IPv%d address: %w; choose another IP%s_AUTODETECTION_METHOD or set IP%s explicitly", version, derr, sixOrEmpty(version), sixOrEmpty(version))
	case setting == "none" || setting == "":
		return current, "", nil
	}
	p, err := api.ParseAddrOrCIDR(setting)
	if err != nil || (version == 4) != p.Addr().Is4() {
		return "", "", cfgErr("IP%s=%q is not an IPv%d address", sixOrEmpty(version), setting, version)
	}
	if !strings.Contains(setting, "/") {
		if _, lp, ok := LocalCIDR(ifs, p.Addr()); ok {
			return lp.String(), "", nil
		}
		return p.String(), fmt.Sprintf("IP%s=%s is on no local interface; using it as %s", sixOrEmpty(version), setting, p), nil
	}
	if _, _, ok := LocalCIDR(ifs, p.Addr()); !ok {
		return p.String(), fmt.Sprintf("unable to confirm IPv%d address %s is assigned to this host", version, p.Addr()), nil
	}
	return p.String(), "", nil
}

func sixOrEmpty(version int) string {
	if version == 6 {
		return "6"
	}
	return ""
}
