package node

import "github.com/onecalico/calico/internal/agent"

// pool6Options reads the CALICO_IPV6POOL_* settings that need parsing.
func pool6Options(o options, p *agent.DefaultPool) error {
	bs, err := agent.ParseBlockSizeV6(o.pool6BlockSize)
	if err != nil {
		return usageError{err}
	}
	p.BlockSize = bs
	if o.pool6NAT != "" {
		b, err := agent.ParseBool("CALICO_IPV6POOL_NAT_OUTGOING", o.pool6NAT)
		if err != nil {
			return usageError{err}
		}
		p.NATOutgoing = &b
	}
	return nil
}
