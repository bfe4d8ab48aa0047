package ipam

import (
	"hash/fnv"
	"math/big"
	"math/rand"
	"net/netip"
	"time"
)

// blockOrder walks the blocks of a pool in upstream's randomBlockGenerator
// order: start at a pseudo-random block index and go round the pool once.
// The generator is math/rand's (v1) seeded with the FNV-32 hash of the host
// name, and the start index is big.Int.Rand over the number of blocks, which
// is exactly what upstream computes; so a host picks the same blocks that
// upstream Calico would pick for it. For /32 (/128) blocks upstream seeds
// from the clock instead, and so do we.
type blockOrder struct {
	base      netip.Prefix // the pool, masked
	blockBits int
	numBlocks *big.Int
	start     *big.Int
}

// newBlockOrder prepares the walk of pool's blocks of size blockBits for host.
func newBlockOrder(pool netip.Prefix, blockBits int, host string, now func() time.Time) *blockOrder {
	pool = pool.Masked()
	bits := pool.Addr().BitLen()
	numBlocks := new(big.Int).Lsh(big.NewInt(1), uint(blockBits-pool.Bits()))
	var seed int64
	if blockBits == bits {
		seed = now().UTC().UnixNano()
	} else {
		h := fnv.New32()
		h.Write([]byte(host))
		seed = int64(h.Sum32())
	}
	r := rand.New(rand.NewSource(seed))
	start := new(big.Int).Rand(r, numBlocks)
	return &blockOrder{base: pool, blockBits: blockBits, numBlocks: numBlocks, start: start}
}

// at returns the n-th block of the walk (0 <= n < count).
func (g *blockOrder) at(n *big.Int) netip.Prefix {
	idx := new(big.Int).Add(g.start, n)
	idx.Mod(idx, g.numBlocks)
	return g.blockAt(idx)
}

// blockAt returns the block with index idx in the pool.
func (g *blockOrder) blockAt(idx *big.Int) netip.Prefix {
	bits := g.base.Addr().BitLen()
	off := new(big.Int).Lsh(idx, uint(bits-g.blockBits))
	a := g.base.Addr().As16()
	v := new(big.Int).SetBytes(a[:])
	v.Add(v, off)
	var out [16]byte
	v.FillBytes(out[:])
	addr := netip.AddrFrom16(out)
	if g.base.Addr().Is4() {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, g.blockBits)
}

// position returns where block appears in the walk (0 = first), or nil if
// the block is not a block of this pool.
func (g *blockOrder) position(block netip.Prefix) *big.Int {
	if block.Bits() != g.blockBits || !g.base.Contains(block.Addr()) {
		return nil
	}
	bits := g.base.Addr().BitLen()
	a, b := block.Addr().As16(), g.base.Addr().As16()
	off := new(big.Int).Sub(new(big.Int).SetBytes(a[:]), new(big.Int).SetBytes(b[:]))
	idx := off.Rsh(off, uint(bits-g.blockBits))
	pos := idx.Sub(idx, g.start)
	return pos.Mod(pos, g.numBlocks)
}

// each calls fn for every block of the walk in order until fn returns false.
func (g *blockOrder) each(fn func(netip.Prefix) bool) {
	n := new(big.Int)
	one := big.NewInt(1)
	for ; n.Cmp(g.numBlocks) < 0; n.Add(n, one) {
		if !fn(g.at(n)) {
			return
		}
	}
}
