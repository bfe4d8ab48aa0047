package nft

import (
	"testing"
)

func TestPrivilegedZZDebug(t *testing.T) {
	l := newPolicyLab(t)
	rs := hostPktRuleset()
	l.apply(t, rs, DefaultPolicyOptions())
	_, err := readPolicyState(l.conn, l.batch, l.p.last)
	t.Log(err)
	m, err := l.batch.tableRules(l.p.last.table)
	t.Log(len(m), err)
}
