package install

import (
	"strings"

	"github.com/onecalico/calico/internal/agent"
	inst "github.com/onecalico/calico/internal/install"
)

// checkNodeSettings checks the daemon's settings as calico-node will, so
// that a typo fails the install, not the service's start.
func checkNodeSettings(vars []inst.EnvVar) error {
	env := map[string]string{}
	cfg := agent.Config{FelixOverrides: map[string]string{}}
	for _, v := range vars {
		env[v.Name] = v.Value
		if name, ok := strings.CutPrefix(v.Name, "FELIX_"); ok && name != "" {
			cfg.FelixOverrides[strings.ToLower(name)] = v.Value
		}
	}
	cfg.NodeName = strings.ToLower(strings.TrimSpace(env["NODENAME"]))
	if cfg.NodeName == "" {
		cfg.NodeName = "node" // the host name, at run time
	}
	cfg.Backend = strings.ToLower(env["CALICO_NETWORKING_BACKEND"])
	cfg.IP, cfg.IP6, cfg.AS = env["IP"], env["IP6"], env["AS"]
	cfg.IPAutodetect, cfg.IP6Autodetect = env["IP_AUTODETECTION_METHOD"], env["IP6_AUTODETECTION_METHOD"]
	cfg.DefaultPool = agent.DefaultPool{CIDR: env["CALICO_IPV4POOL_CIDR"], IPIPMode: env["CALICO_IPV4POOL_IPIP"], VXLANMode: env["CALICO_IPV4POOL_VXLAN"]}
	var err error
	if cfg.DefaultPool.BlockSize, err = agent.ParseBlockSize(env["CALICO_IPV4POOL_BLOCK_SIZE"]); err != nil {
		return err
	}
	for _, name := range []string{"NO_DEFAULT_POOLS", "CALICO_IPV4POOL_NAT_OUTGOING"} {
		if v := env[name]; v != "" {
			b, err := agent.ParseBool(name, v)
			if err != nil {
				return err
			}
			if name == "NO_DEFAULT_POOLS" {
				cfg.NoDefaultPools = b
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return oneLine(err)
	}
	return nil
}

type lineError struct{ error }

func (e lineError) Error() string { return strings.ReplaceAll(e.error.Error(), "\n", "; ") }
func (e lineError) Unwrap() error { return e.error }

func oneLine(err error) error { return lineError{err} }
