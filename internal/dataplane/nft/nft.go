// Package nft owns the node daemon's nftables tables (family inet): the
// NAT table (normally "calico"), whose whole content Apply replaces
// atomically, and the network policy table (PolicyTableName), which a
// PolicyApplier keeps in step with a ruleset.Ruleset: replaced whole on
// its first apply, then updated in place, one batch per change (see
// policy.go for the layout and why it is a sibling table).
//
// Building is pure: build and the buildX functions turn the desired Table
// into nftables objects without a kernel, so they are unit-tested (and
// rendered to golden text) directly. Applying queues, on one Conn, "add
// table; delete table; add table, sets with elements, chains, rules" and
// sends it as ONE netlink batch with ONE Flush. The kernel commits a batch as
// a single transaction, so other readers see either the old table or the new
// one, never a missing or half-built table. No other table is touched.
//
// The package imports only the standard library, nftables (and its
// netlink) and internal/ruleset; never the datastore, api or agent.
package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
)

// DefaultTableName is the table the node daemon owns.
const DefaultTableName = "calico"

// NAT is the desired NAT-outgoing configuration (Felix natOutgoing).
type NAT struct {
	MasqPools   []netip.Prefix // pools with natOutgoing (v4 and v6 mixed; split by family)
	AllPools    []netip.Prefix // every pool, disabled ones included
	FullyRandom bool           // masquerade fully-random
	// SNATAddress (Felix natOutgoingAddress), when valid, is the IPv4
	// source for natOutgoing packets: SNAT to it instead of masquerade.
	SNATAddress netip.Addr
	// PortMin-PortMax (Felix natPortRange), when PortMin is not 0, are the
	// source ports TCP and UDP are mapped to; other protocols keep theirs.
	PortMin, PortMax uint16
}

// Table is the desired content of our table.
type Table struct {
	Name string // "calico"
	NAT  NAT
}

// ErrInvalid is wrapped by errors about a malformed Table.
var ErrInvalid = errors.New("invalid nft table")

func (t Table) validate() error {
	if t.Name == "" || len(t.Name) > 255 {
		return fmt.Errorf("table name %q: %w", t.Name, ErrInvalid)
	}
	if a := t.NAT.SNATAddress; a.IsValid() && !a.Is4() {
		return fmt.Errorf("SNAT address %s is not IPv4: %w", a, ErrInvalid)
	}
	if n := t.NAT; (n.PortMin == 0) != (n.PortMax == 0) || n.PortMin > n.PortMax {
		return fmt.Errorf("NAT port range %d-%d: %w", n.PortMin, n.PortMax, ErrInvalid)
	}
	for _, ps := range [][]netip.Prefix{t.NAT.MasqPools, t.NAT.AllPools} {
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				return fmt.Errorf("pool %s: %w", p, ErrInvalid)
			}
		}
	}
	return nil
}

// Apply replaces the content of table t.Name with t in one atomic batch,
// creating the table if it is missing. It sends exactly one batch.
func Apply(c *nftables.Conn, t Table) error {
	s, err := build(t)
	if err != nil {
		return err
	}
	// "add" does not fail on an existing table, so the delete that follows
	// always has something to delete: together they empty the table inside
	// the same transaction that refills it.
	c.AddTable(s.Table)
	c.DelTable(s.Table)
	c.AddTable(s.Table)
	for _, ss := range s.Sets {
		if err := c.AddSet(ss.Set, ss.Elements); err != nil {
			return fmt.Errorf("queue set %s in table %s: %w", ss.Set.Name, t.Name, discard(c, err))
		}
	}
	// Rules reference sets by name and by the batch-local ID AddSet just
	// assigned; rebuild them now that the IDs are known.
	s.buildRules(t)
	for _, ch := range s.Chains {
		c.AddChain(ch)
		for _, r := range s.Rules[ch.Name] {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replace nft table inet %s: %w", t.Name, err)
	}
	return nil
}

// discard empties c's queue after a failure between queueing the delete
// and Flush, without changing the kernel: it appends a message the kernel
// must reject (a table name over NFT_NAME_MAXLEN) and flushes. nf_tables
// aborts a batch as a whole when any message in it fails, so none of the
// queued half-batch takes effect, and the Conn is clean again.
func discard(c *nftables.Conn, err error) error {
	c.DelTable(&nftables.Table{Name: strings.Repeat("x", 300), Family: nftables.TableFamilyINet})
	_ = c.Flush()
	return err
}

// Delete removes table name (family inet) and everything in it. A missing
// table is not an error: "add" then "delete" in one batch always succeeds.
func Delete(c *nftables.Conn, name string) error {
	t := buildTable(name)
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nft table inet %s: %w", name, err)
	}
	return nil
}
