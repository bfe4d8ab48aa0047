// Package ipam is Calico's block-affinity IP address management over the
// datastore: it hands out addresses from IP pools in blocks that are affine
// to hosts, exactly in upstream Calico's etcd layout
// (/calico/ipam/v2/{assignment,host,handle,config}) and JSON, so upstream
// calicoctl and Felix read what we write and we read what they wrote.
//
// It imports only internal/api, internal/kv and internal/selector. It
// declares the Store it needs (a subset of kv.Store); the etcd and memory
// backends satisfy it. It never imports a backend, the datastore client,
// or anything of the dataplane.
//
// # Algorithm
//
// The algorithm is upstream's (libcalico-go/lib/ipam): pools are selected by
// family, enabled state, nodeSelector against the Node's labels, allowedUses
// and assignmentMode (or taken by name/CIDR when requested); the host's
// affine blocks are used first, in key order; new blocks are found by
// upstream's randomBlockGenerator (math/rand seeded with the FNV-32 hash of
// the host name, so a host picks the same blocks upstream would) and claimed
// with a pending affinity that is confirmed once the block exists; when no
// block can be claimed and strict affinity is off, addresses are borrowed
// from other hosts' blocks. Empty blocks claimed more than a minute ago by
// other hosts are reclaimed when a pool has no unclaimed block left.
//
// # Invariants
//
// These hold after every transaction this package commits, whatever the
// interleaving with other processes and wherever a process dies:
//
//  1. An ordinal of a block is owned by at most one allocation attribute:
//     allocations[o] is a single index, and every write of a block is a
//     compare-and-swap on the mod revision the new value was computed from.
//     An address is therefore never handed out twice.
//  2. For every handle H and block B, handle H's count for B equals the
//     number of ordinals of B whose attribute carries H.
//  3. A block and the handles whose counts it changes are written in ONE
//     etcd transaction (kv.Store.Commit), each write conditioned on the
//     revision it was computed from: both change or neither does. (Upstream
//     writes the handle first and the block second, so a crash in between
//     leaves a handle that over-counts.) AutoAssign goes further: it plans
//     every address of a request (both families, any number of blocks) in
//     private copies and commits them all with the handle in one
//     transaction, so a request that fails, or a process that dies,
//     allocates nothing.
//  4. A block claim writes the affinity "pending" first, then creates the
//     block and confirms the affinity in one transaction; releasing an
//     affinity deletes (or un-affines) the block and deletes the affinity in
//     one transaction. A block that names host H as its affinity therefore
//     always has H's affinity key, confirmed.
//
// Correctness never depends on anything outside etcd: the CNI plugin's host
// lock only reduces conflicts. A compare-and-swap that fails re-reads and
// retries, up to Options.MaxRetries times.
//
// Round trips: a steady-state AutoAssign is three (one Read of config,
// node, pools, reservations, handle and the host's affinities; one Read of
// the affine blocks; one Commit of block and handle). A release by handle
// is three (handle, block, Commit).
package ipam
