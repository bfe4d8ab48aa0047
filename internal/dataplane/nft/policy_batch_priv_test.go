package nft

import (
	"errors"
	"syscall"
	"testing"

	"github.com/google/nftables"
)

// TestPrivilegedBatchSocketErrors: a batch the kernel refuses (a chain in
// a table that does not exist, in the middle of the batch) is an error
// naming the errno, nothing of it is committed, and the shared socket is
// clean afterwards: the next batch and a query on the Conn work.
func TestPrivilegedBatchSocketErrors(t *testing.T) {
	l := newPolicyLab(t)
	c, err := l.batch.conn()
	if err != nil {
		t.Fatal(err)
	}
	good := &nftables.Table{Name: "batch-test", Family: nftables.TableFamilyINet}
	c.AddTable(good)
	c.AddChain(&nftables.Chain{Name: "x", Table: &nftables.Table{Name: "missing", Family: nftables.TableFamilyINet}})
	c.AddChain(&nftables.Chain{Name: "y", Table: good})
	err = l.batch.flush(c)
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("flush of a bad batch = %v, want ENOENT", err)
	}
	if tables, err := l.conn.ListTablesOfFamily(nftables.TableFamilyINet); err != nil || len(tables) != 0 {
		t.Fatalf("after a refused batch: tables %v, %v; want none", tables, err)
	}
	c.AddTable(good)
	c.AddChain(&nftables.Chain{Name: "y", Table: good})
	if err := l.batch.flush(c); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	if _, err := l.conn.ListChain(good, "y"); err != nil {
		t.Errorf("chain of the good batch: %v", err)
	}
	l.apply(t, labRuleset(), DefaultPolicyOptions())
	if _, err := l.conn.ListTableOfFamily(PolicyTableName, nftables.TableFamilyINet); err != nil {
		t.Errorf("policy table after apply: %v", err)
	}
}
