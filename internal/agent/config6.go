package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/selector"
)

// DefaultIPv6PoolName is the name of the IPv6 pool created at startup.
const DefaultIPv6PoolName = "default-ipv6-ippool"

// ipv6Enabled says whether startup does IPv6: ipv6Support is not turned
// off with FELIX_IPV6SUPPORT, and IP6 asks for an address or
// CALICO_IPV6POOL_CIDR names a pool. (Upstream creates the IPv6 pool
// whenever the kernel has IPv6 and ipv6Support is on; we also want a sign
// that the operator runs IPv6, so IPv4-only installs stay IPv4-only.)
func (c *Config) ipv6Enabled() bool {
	if v, ok := c.FelixOverrides["ipv6support"]; ok {
		if on, err := parseBool(v); err == nil && !on {
			return false
		}
	}
	if c.DefaultPoolV6.CIDR != "" && c.DefaultPoolV6.CIDR != "none" {
		return true
	}
	return c.IP6 != "" && c.IP6 != "none"
}

// validate6 checks the CALICO_IPV6POOL_* settings (with a stand-in CIDR
// when none is given: the real one is generated at startup).
func (c *Config) validate6() error {
	if c.NoDefaultPools && c.DefaultPoolV6.CIDR != "" && c.DefaultPoolV6.CIDR != "none" {
		return cfgErr("NO_DEFAULT_POOLS=true conflicts with CALICO_IPV6POOL_CIDR=%s: set only one", c.DefaultPoolV6.CIDR)
	}
	if c.NoDefaultPools || c.DefaultPoolV6.CIDR == "none" || !c.ipv6Enabled() {
		return nil
	}
	cidr := c.DefaultPoolV6.CIDR
	if cidr == "" {
		cidr = "fd00::/48"
	}
	_, err := c.defaultPoolV6(cidr)
	return err
}

// defaultPoolV6 builds default-ipv6-ippool with cidr: block size 122,
// vxlanMode Never and natOutgoing false unless CALICO_IPV6POOL_* say
// otherwise, as upstream. IPv6 pools have no IPIP.
func (c *Config) defaultPoolV6(cidr string) (*api.IPPool, error) {
	d := c.DefaultPoolV6
	pfx, err := api.ParseCIDR(cidr)
	if err != nil || !pfx.Addr().Is6() {
		return nil, cfgErr("CALICO_IPV6POOL_CIDR=%q: want an IPv6 CIDR such as fd00:10:244::/64", d.CIDR)
	}
	bs := d.BlockSize
	if bs == 0 {
		bs = api.DefaultBlockSizeV6
	}
	if bs < api.MinBlockSizeV6 || bs > 128 {
		return nil, cfgErr("CALICO_IPV6POOL_BLOCK_SIZE=%d: want 116-128", bs)
	}
	if pfx.Bits() > bs {
		return nil, cfgErr("CALICO_IPV6POOL_CIDR=%s is smaller than a block (CALICO_IPV6POOL_BLOCK_SIZE=%d)", pfx, bs)
	}
	vxlan, err := parseMode("CALICO_IPV6POOL_VXLAN", d.VXLANMode)
	if err != nil {
		return nil, err
	}
	if d.NodeSelector != "" {
		if err := selector.Validate(d.NodeSelector); err != nil {
			return nil, cfgErr("CALICO_IPV6POOL_NODE_SELECTOR: %v", err)
		}
	}
	p := api.NewIPPool()
	p.Name = DefaultIPv6PoolName
	p.Spec.CIDR = pfx.Masked().String()
	p.Spec.BlockSize = bs
	p.Spec.IPIPMode = api.IPIPModeNever
	p.Spec.VXLANMode = api.VXLANMode(vxlan)
	p.Spec.NATOutgoing = d.NATOutgoing != nil && *d.NATOutgoing
	p.Spec.NodeSelector = d.NodeSelector
	return p, nil
}

// ParseBlockSizeV6 reads CALICO_IPV6POOL_BLOCK_SIZE.
func ParseBlockSizeV6(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, cfgErr("CALICO_IPV6POOL_BLOCK_SIZE=%q: want a number 116-128", v)
	}
	return n, nil
}

// ulaPrefix returns a random unique local /48 (fdXX:XXXX:XXXX::/48), the
// pool upstream creates when CALICO_IPV6POOL_CIDR is not set.
func ulaPrefix() (netip.Prefix, error) {
	var b [16]byte
	b[0] = 0xfd
	if _, err := rand.Read(b[1:6]); err != nil {
		return netip.Prefix{}, fmt.Errorf("generate an IPv6 ULA prefix: %w", err)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 48), nil
}

// ensureDefaultPoolV6 creates default-ipv6-ippool when IPv6 is enabled,
// default pools are on and no IPv6 pool exists.
func (a *Agent) ensureDefaultPoolV6(ctx context.Context) error {
	c := &a.cfg
	if c.NoDefaultPools || c.DefaultPoolV6.CIDR == "none" || !c.ipv6Enabled() {
		return nil
	}
	pools, _, err := datastore.ListOf[*api.IPPool](ctx, a.client, api.KindIPPool, "")
	if err != nil {
		return fmt.Errorf("list IP pools: %w", err)
	}
	for _, p := range pools {
		if pc := p.Prefix(); pc.IsValid() && pc.Addr().Is6() {
			return nil
		}
	}
	cidr := c.DefaultPoolV6.CIDR
	if cidr == "" {
		ula, err := ulaPrefix()
		if err != nil {
			return err
		}
		cidr = ula.String()
	}
	p, err := c.defaultPoolV6(cidr)
	if err != nil {
		return err
	}
	return a.createDefaultPool(ctx, p, "IPv6 pool")
}
