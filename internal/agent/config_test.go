package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{NodeName: "n1"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	no := false
	for _, tc := range []struct {
		mut  func(c *Config)
		want string
	}{
		{func(c *Config) { c.NodeName = "" }, "no node name: set NODENAME"},
		{func(c *Config) { c.NodeName = "Bad_Name" }, `NODENAME "Bad_Name"`},
		{func(c *Config) { c.Backend = "gobgp" }, `CALICO_NETWORKING_BACKEND="gobgp": want bird, vxlan or none`},
		{func(c *Config) { c.IP = "10.0.0.300" }, `IP="10.0.0.300": want autodetect, none, or an IPv4 address`},
		{func(c *Config) { c.IP6 = "10.0.0.1" }, `IP6="10.0.0.1"`},
		{func(c *Config) { c.IPAutodetect = "interface=[" }, "IP_AUTODETECTION_METHOD: interface"},
		{func(c *Config) { c.AS = "sixty" }, `AS="sixty"`},
		{func(c *Config) { c.NoDefaultPools = true; c.DefaultPool.CIDR = "10.0.0.0/16" }, "NO_DEFAULT_POOLS=true conflicts with CALICO_IPV4POOL_CIDR"},
		{func(c *Config) { c.DefaultPool.CIDR = "fd00::/64" }, "CALICO_IPV4POOL_CIDR=\"fd00::/64\""},
		{func(c *Config) { c.DefaultPool.BlockSize = 19 }, "CALICO_IPV4POOL_BLOCK_SIZE=19: want 20-32"},
		{func(c *Config) { c.DefaultPool.IPIPMode = "sometimes" }, `CALICO_IPV4POOL_IPIP="sometimes"`},
		{func(c *Config) { c.DefaultPool.IPIPMode, c.DefaultPool.VXLANMode = "Always", "Always" }, "a pool uses at most one encapsulation"},
		{func(c *Config) { c.DefaultPool.NodeSelector = "a ==" }, "CALICO_IPV4POOL_NODE_SELECTOR"},
		{func(c *Config) { c.FelixOverrides = map[string]string{"VXLANVNI": "x"} }, `FELIX_VXLANVNI="x": want an integer`},
		{func(c *Config) { c.FelixOverrides = map[string]string{"HEALTHPORT": "70000"} }, "healthPort 70000 is out of range"},
		{func(c *Config) { c.DefaultPool.NATOutgoing = &no; c.DefaultPool.CIDR = "bad" }, "CALICO_IPV4POOL_CIDR=\"bad\""},
	} {
		c := ok
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want ErrConfig containing %q", err, tc.want)
		}
	}
}

func TestDefaultPool(t *testing.T) {
	nat := false
	for _, tc := range []struct {
		cfg                    Config
		cidr, ipip, vxlan, sel string
		natOutgoing            bool
		blockSize              int
	}{
		{Config{}, "192.168.0.0/16", "Always", "Never", "all()", true, 26}, // backend bird
		{Config{Backend: BackendVXLAN}, "192.168.0.0/16", "Never", "Always", "all()", true, 26},
		{Config{Backend: BackendNone}, "192.168.0.0/16", "Never", "Never", "all()", true, 26},
		{Config{Backend: BackendVXLAN, DefaultPool: DefaultPool{IPIPMode: "cross-subnet"}}, "192.168.0.0/16", "CrossSubnet", "Never", "all()", true, 26},
		{Config{DefaultPool: DefaultPool{CIDR: "10.244.1.7/16", BlockSize: 24, VXLANMode: "CrossSubnet", NATOutgoing: &nat, NodeSelector: "x == 'y'"}},
			"10.244.0.0/16", "Never", "CrossSubnet", "x == 'y'", false, 24},
	} {
		p, err := tc.cfg.defaultPool()
		if err != nil {
			t.Fatal(err)
		}
		api.Default(p)
		if err := api.Validate(p); err != nil {
			t.Errorf("%+v: invalid pool: %v", tc.cfg, err)
		}
		s := p.Spec
		if p.Name != "default-ipv4-ippool" || s.CIDR != tc.cidr || string(s.IPIPMode) != tc.ipip || string(s.VXLANMode) != tc.vxlan ||
			s.NATOutgoing != tc.natOutgoing || s.BlockSize != tc.blockSize || s.NodeSelector != tc.sel {
			t.Errorf("%+v: pool %s %+v", tc.cfg.DefaultPool, p.Name, s)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "mtu")
	changed, err := writeFileAtomic(path, []byte("1450"))
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	st1, _ := os.Stat(path)
	changed, err = writeFileAtomic(path, []byte("1450"))
	if err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v, want no write", changed, err)
	}
	st2, _ := os.Stat(path)
	if !os.SameFile(st1, st2) {
		t.Error("same content rewrote the file")
	}
	if changed, err = writeFileAtomic(path, []byte("1410")); err != nil || !changed {
		t.Fatalf("new content: %v %v", changed, err)
	}
	if n, err := ReadMTUFile(path); err != nil || n != 1410 {
		t.Errorf("ReadMTUFile = %d, %v", n, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temp files left)", len(ents))
	}
}
