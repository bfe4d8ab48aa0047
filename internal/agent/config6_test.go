package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func TestDefaultPoolV6(t *testing.T) {
	yes := true
	c := Config{NodeName: "n1", IP6: "autodetect", DefaultPoolV6: DefaultPool{CIDR: "fd00:10:244::1/64", VXLANMode: "always", NATOutgoing: &yes}}
	p, err := c.defaultPoolV6(c.DefaultPoolV6.CIDR)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "default-ipv6-ippool" || p.Spec.CIDR != "fd00:10:244::/64" || p.Spec.BlockSize != 122 ||
		p.Spec.VXLANMode != api.VXLANModeAlways || p.Spec.IPIPMode != api.IPIPModeNever || !p.Spec.NATOutgoing {
		t.Errorf("pool %+v", p.Spec)
	}
	// Upstream's defaults: vxlanMode Never, natOutgoing false.
	c.DefaultPoolV6 = DefaultPool{}
	p, err = c.defaultPoolV6("fd00:1::/48")
	if err != nil || p.Spec.VXLANMode != api.VXLANModeNever || p.Spec.NATOutgoing {
		t.Errorf("defaults: %+v, %v", p, err)
	}
	ula, err := ulaPrefix()
	if err != nil || ula.Bits() != 48 || ula.Addr().As16()[0] != 0xfd {
		t.Errorf("ULA prefix %s, %v", ula, err)
	}
}

func TestIPv6Enabled(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want bool
	}{
		{Config{}, false},
		{Config{IP6: "none"}, false},
		{Config{IP6: "autodetect"}, true},
		{Config{IP6: "fd00::11/64"}, true},
		{Config{DefaultPoolV6: DefaultPool{CIDR: "fd00::/48"}}, true},
		{Config{IP6: "autodetect", FelixOverrides: map[string]string{"ipv6support": "false"}}, false},
	} {
		if got := tc.c.ipv6Enabled(); got != tc.want {
			t.Errorf("%+v: ipv6Enabled %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestValidateIPv6Pool(t *testing.T) {
	for _, tc := range []struct {
		pool DefaultPool
		want string
	}{
		{DefaultPool{CIDR: "10.0.0.0/16"}, "CALICO_IPV6POOL_CIDR"},
		{DefaultPool{CIDR: "fd00::/64", BlockSize: 112}, "CALICO_IPV6POOL_BLOCK_SIZE=112"},
		{DefaultPool{CIDR: "fd00::/124"}, "smaller than a block"},
		{DefaultPool{CIDR: "fd00::/64", VXLANMode: "sometimes"}, "CALICO_IPV6POOL_VXLAN"},
		{DefaultPool{VXLANMode: "Always"}, ""}, // the CIDR is generated
	} {
		c := Config{NodeName: "n1", IP6: "autodetect", DefaultPoolV6: tc.pool}
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.pool, err)
			}
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.pool, err, tc.want)
		}
	}
	c := Config{NodeName: "n1", NoDefaultPools: true, DefaultPoolV6: DefaultPool{CIDR: "fd00::/64"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "NO_DEFAULT_POOLS") {
		t.Errorf("NO_DEFAULT_POOLS with CALICO_IPV6POOL_CIDR: %v", err)
	}
}
