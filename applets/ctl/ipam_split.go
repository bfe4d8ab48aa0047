package ctl

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// runIPAMSplit is `calicoctl ipam split <NUMBER> (--cidr=<CIDR> | --name=<NAME>)`:
// it replaces one IP pool by NUMBER (a power of two) equal pools that
// cover it, with the same settings. Blocks are keyed by their CIDR, so
// every allocation stays valid; the children must not be smaller than one
// block. Like upstream it needs the datastore locked (`datastore migrate
// lock`), and the children are created and the parent deleted in one
// transaction: all or nothing.
func runIPAMSplit(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("ipam split", "calicoctl ipam split <NUMBER> [--cidr=<CIDR>] [--name=<POOL_NAME>] [--config=<CONFIG>]")
	cidr := fs.String("cidr", "", "CIDR of the IP pool to split.")
	name := fs.String("name", "", "Name of the IP pool to split.")
	addCompatFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*cidr == "") == (*name == "") {
		return usagef("calicoctl ipam split: give the number of pools and exactly one of --cidr or --name")
	}
	n, err := strconv.Atoi(fs.Arg(0))
	if err != nil || n < 2 || n&(n-1) != 0 {
		return usagef("calicoctl ipam split: the number of pools must be a power of 2 (2, 4, 8, ...), got %q", fs.Arg(0))
	}
	c, err := e.Client()
	if err != nil {
		return err
	}
	if err := requireLocked(ctx, c); err != nil {
		return err
	}
	parent, rev, err := findPool(ctx, c, *name, *cidr)
	if err != nil {
		return err
	}
	children, err := splitPool(parent, n)
	if err != nil {
		return err
	}
	writes, err := splitWrites(parent, rev, children)
	if err != nil {
		return err
	}
	s, err := e.KV()
	if err != nil {
		return err
	}
	if _, err := s.Commit(ctx, writes); err != nil {
		if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("IPPool %s or a pool named like a child changed during the split; nothing was written: %v", parent.Name, err)
		}
		return fmt.Errorf("split IPPool %s: nothing was written: %v", parent.Name, err)
	}
	parts := make([]string, 0, len(children))
	for _, ch := range children {
		parts = append(parts, fmt.Sprintf("%s (%s)", ch.Name, ch.Spec.CIDR))
	}
	fmt.Fprintf(e.Stdout, "Successfully split IPPool %s (%s) into %d IP pools: %s\n", parent.Name, parent.Spec.CIDR, n, strings.Join(parts, ", "))
	return nil
}

// requireLocked refuses to split unless datastoreReady is false.
func requireLocked(ctx context.Context, c *datastore.Client) error {
	ci, err := datastore.GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", datastore.ClusterInfoName)
	if err == nil && !ci.Ready() {
		return nil
	}
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return err
	}
	return errors.New("the datastore is not locked: run `calicoctl datastore migrate lock` first, so that no IPAM data changes during the split, and `calicoctl datastore migrate unlock` after it")
}

// findPool returns the pool named name, or the one whose CIDR is cidr,
// with its revision.
func findPool(ctx context.Context, c *datastore.Client, name, cidr string) (*api.IPPool, int64, error) {
	var want netip.Prefix
	if cidr != "" {
		p, err := api.ParseCIDR(cidr)
		if err != nil {
			return nil, 0, usagef("calicoctl ipam split: invalid --cidr %q", cidr)
		}
		want = p.Masked()
	}
	pools, _, err := datastore.ListOf[*api.IPPool](ctx, c, api.KindIPPool, "")
	if err != nil {
		return nil, 0, err
	}
	for _, p := range pools {
		if (name != "" && p.Name == name) || (cidr != "" && p.Prefix() == want) {
			rev, err := strconv.ParseInt(p.ResourceVersion, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("IPPool %s: bad resourceVersion %q", p.Name, p.ResourceVersion)
			}
			return p, rev, nil
		}
	}
	if name != "" {
		return nil, 0, fmt.Errorf("resource does not exist: IPPool(%s) with error: <nil>", name)
	}
	return nil, 0, fmt.Errorf("no IPPool has CIDR %s (see `calicoctl get ippools`)", want)
}

// splitPool makes the n children of p: equal CIDRs in address order, the
// same settings, names <parent>-<cidr with separators as dashes>.
func splitPool(p *api.IPPool, n int) ([]*api.IPPool, error) {
	cidr := p.Prefix()
	if !cidr.IsValid() {
		return nil, fmt.Errorf("IPPool %s has an invalid CIDR %q", p.Name, p.Spec.CIDR)
	}
	bitsMore := bits.TrailingZeros(uint(n))
	size := cidr.Bits() + bitsMore
	block := p.Spec.BlockSize
	if block == 0 {
		block = api.DefaultBlockSizeV4
		if cidr.Addr().Is6() {
			block = api.DefaultBlockSizeV6
		}
	}
	if size > block {
		return nil, fmt.Errorf("cannot split IPPool %s (%s, blockSize %d) into %d pools: each would be a /%d, smaller than one block", p.Name, cidr, block, n, size)
	}
	children := make([]*api.IPPool, 0, n)
	addr := cidr.Addr()
	for range n {
		sub := netip.PrefixFrom(addr, size)
		ch := api.NewIPPool()
		ch.Name = p.Name + "-" + strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(sub.String())
		ch.Labels, ch.Annotations = p.Labels, p.Annotations
		ch.Spec = p.Spec
		ch.Spec.CIDR = sub.String()
		ch.Spec.BlockSize = block
		children = append(children, ch)
		addr = nextPrefixAddr(sub)
	}
	return children, nil
}

// nextPrefixAddr is the first address after p: its last address, plus one.
func nextPrefixAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last.Next()
}

// splitWrites creates every child (each must not exist) and deletes the
// parent at the revision read.
func splitWrites(parent *api.IPPool, rev int64, children []*api.IPPool) ([]kv.Write, error) {
	k, _ := api.LookupKind(api.KindIPPool)
	writes := make([]kv.Write, 0, len(children)+1)
	for _, ch := range children {
		if err := api.Validate(ch); err != nil {
			return nil, fmt.Errorf("child pool %s: %v", ch.Name, err)
		}
		v, err := datastore.Encode(ch)
		if err != nil {
			return nil, err
		}
		writes = append(writes, kv.Write{Key: k.Key("", ch.Name), Value: v, Rev: 0})
	}
	return append(writes, kv.Write{Key: k.Key("", parent.Name), Rev: rev, Delete: true}), nil
}
