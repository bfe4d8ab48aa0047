package agent

import (
	"log/slog"

	"github.com/onecalico/calico/internal/api"
)

// recordVXLANV6 writes the IPv6 VXLAN tunnel address s ("" to clear) on
// n, with the MAC upstream derives (sha1(name+"-v6")) when n has none; had
// says the node held an address before, so a MAC we set is cleared with
// it. It reports whether n changed.
func recordVXLANV6(n *api.Node, s string, had bool, log *slog.Logger) bool {
	changed := n.Spec.IPv6VXLANTunnelAddr != s
	n.Spec.IPv6VXLANTunnelAddr = s
	switch {
	case s == "" && had && n.Spec.VXLANTunnelMACAddrV6 != "":
		n.Spec.VXLANTunnelMACAddrV6 = ""
		changed = true
	case s != "" && n.Spec.VXLANTunnelMACAddrV6 == "":
		n.Spec.VXLANTunnelMACAddrV6 = VTEPMACV6(n.Name).String()
		changed = true
	}
	if changed {
		log.Info("recording IPv6 VXLAN tunnel address", "addr", s, "mac", n.Spec.VXLANTunnelMACAddrV6)
	}
	return changed
}
