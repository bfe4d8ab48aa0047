package api

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// IPAM keys, exactly as upstream's etcd v3 backend writes them.
const (
	IPAMPrefix       = "/calico/ipam/v2/"
	IPAMConfigKey    = IPAMPrefix + "config"
	IPAMHandlePrefix = IPAMPrefix + "handle/"
	IPAMHostPrefix   = IPAMPrefix + "host/"
	IPAMBlockPrefix  = IPAMPrefix + "assignment/"
)

// Affinity states. An empty state is a legacy confirmed affinity.
const (
	AffinityPending         = "pending"
	AffinityConfirmed       = "confirmed"
	AffinityPendingDeletion = "pendingDeletion"
)

// Attribute keys and tunnel-address types used in allocation attributes.
const (
	AttrNode      = "node"
	AttrPod       = "pod"
	AttrNamespace = "namespace"
	AttrTimestamp = "timestamp"
	AttrType      = "type"

	TypeIPIPTunnelAddress    = "ipipTunnelAddress"
	TypeVXLANTunnelAddress   = "vxlanTunnelAddress"
	TypeVXLANV6TunnelAddress = "vxlanV6TunnelAddress"
)

// Block is upstream's AllocationBlock: one block of addresses of a pool and
// who holds each of them. Allocations[i] is an index into Attributes, or nil
// when ordinal i is free; Unallocated lists the free ordinals in the order
// they will be handed out.
type Block struct {
	CIDR                        string                `json:"cidr"`
	Affinity                    *string               `json:"affinity"`
	AffinityClaimTime           string                `json:"affinity_claim_time,omitempty"`
	HostAffinity                *string               `json:"hostAffinity,omitempty"`
	Allocations                 []*int                `json:"allocations"`
	Unallocated                 []int                 `json:"unallocated"`
	Attributes                  []AllocationAttribute `json:"attributes"`
	SequenceNumber              uint64                `json:"sequenceNumber"`
	SequenceNumberForAllocation map[string]uint64     `json:"sequenceNumberForAllocation"`
	Deleted                     bool                  `json:"deleted"`
}

// AllocationAttribute is who holds an address: the handle and free-form
// attributes. Upstream master adds two fields: alternateOwnerAttrs
// (KubeVirt; kept as read) and releasedAt, which marks an address released
// while an IP cooldown is configured: such an attribute carries only
// releasedAt, the address belongs to nobody and is not handed out again
// until the cooldown has passed. releasedAt is written at second
// resolution, as Kubernetes' metav1.Time.
type AllocationAttribute struct {
	HandleID            *string           `json:"handle_id,omitempty"`
	ActiveOwnerAttrs    map[string]string `json:"secondary,omitempty"`
	AlternateOwnerAttrs map[string]string `json:"alternateOwnerAttrs,omitempty"`
	ReleasedAt          *time.Time        `json:"releasedAt,omitempty"`
}

// Cooling reports whether the attribute marks a released address that is
// cooling down.
func (a AllocationAttribute) Cooling() bool { return a.ReleasedAt != nil }

// BlockAffinity is the value under /calico/ipam/v2/host/<host>/<family>/block/<cidr>.
type BlockAffinity struct {
	State   string `json:"state"`
	Deleted bool   `json:"deleted"`
}

// Confirmed reports whether the affinity is confirmed (an empty state counts).
func (a *BlockAffinity) Confirmed() bool {
	return a.State == "" || a.State == AffinityConfirmed
}

// Handle counts, per block CIDR, the addresses one handle holds there.
type Handle struct {
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted"`
}

// IPAMConfig is the value under /calico/ipam/v2/config.
type IPAMConfig struct {
	StrictAffinity               bool   `json:"strict_affinity,omitempty"`
	AutoAllocateBlocks           bool   `json:"auto_allocate_blocks,omitempty"`
	MaxBlocksPerHost             int    `json:"maxBlocksPerHost,omitempty"`
	KubeVirtVMAddressPersistence string `json:"kubeVirtVMAddressPersistence,omitempty"`
	IPCooldownSeconds            int    `json:"ipCooldownSeconds,omitempty"`
}

// DefaultIPAMConfig is what upstream writes when the config is first needed.
func DefaultIPAMConfig() IPAMConfig {
	return IPAMConfig{AutoAllocateBlocks: true, KubeVirtVMAddressPersistence: "Enabled"}
}

func family(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "ipv6"
	}
	return "ipv4"
}

// cidrSegment renders a block CIDR as its key segment: "/" becomes "-".
func cidrSegment(p netip.Prefix) string {
	return strings.Replace(p.Masked().String(), "/", "-", 1)
}

// BlockKey is the key of a block.
func BlockKey(cidr netip.Prefix) string {
	return IPAMBlockPrefix + family(cidr) + "/block/" + cidrSegment(cidr)
}

// BlockPrefix lists the blocks of one family (4 or 6), or both with 0.
func BlockPrefix(ipVersion int) string {
	switch ipVersion {
	case 4:
		return IPAMBlockPrefix + "ipv4/block/"
	case 6:
		return IPAMBlockPrefix + "ipv6/block/"
	}
	return IPAMBlockPrefix
}

// AffinityKey is the key of host's affinity to a block.
func AffinityKey(host string, cidr netip.Prefix) string {
	return IPAMHostPrefix + host + "/" + family(cidr) + "/block/" + cidrSegment(cidr)
}

// HostAffinityPrefix lists a host's affinities for one family (4 or 6), or both with 0.
func HostAffinityPrefix(host string, ipVersion int) string {
	switch ipVersion {
	case 4:
		return IPAMHostPrefix + host + "/ipv4/block/"
	case 6:
		return IPAMHostPrefix + host + "/ipv6/block/"
	}
	return IPAMHostPrefix + host + "/"
}

// HandleKey is the key of a handle. The ID is used as is, as upstream does.
func HandleKey(handleID string) string { return IPAMHandlePrefix + handleID }

// ParseBlockKey returns the block CIDR a block key names.
func ParseBlockKey(key string) (netip.Prefix, error) {
	rest, ok := strings.CutPrefix(key, IPAMBlockPrefix)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("key %q is not a block key", key)
	}
	_, seg, ok := strings.Cut(rest, "/block/")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("key %q is not a block key", key)
	}
	return parseCIDRSegment(key, seg)
}

// ParseAffinityKey returns the host and block CIDR an affinity key names.
func ParseAffinityKey(key string) (host string, cidr netip.Prefix, err error) {
	rest, ok := strings.CutPrefix(key, IPAMHostPrefix)
	if !ok {
		return "", netip.Prefix{}, fmt.Errorf("key %q is not an affinity key", key)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[2] != "block" || (parts[1] != "ipv4" && parts[1] != "ipv6") {
		return "", netip.Prefix{}, fmt.Errorf("key %q is not an affinity key", key)
	}
	cidr, err = parseCIDRSegment(key, parts[3])
	return parts[0], cidr, err
}

// ParseHandleKey returns the handle ID of a handle key.
func ParseHandleKey(key string) (string, error) {
	id, ok := strings.CutPrefix(key, IPAMHandlePrefix)
	if !ok || id == "" {
		return "", fmt.Errorf("key %q is not a handle key", key)
	}
	return id, nil
}

func parseCIDRSegment(key, seg string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.Replace(seg, "-", "/", 1))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("key %q: bad CIDR segment %q", key, seg)
	}
	return p, nil
}

// HostAffinity is the block's affinity value for a host: "host:<name>".
func HostAffinity(host string) string { return "host:" + host }

// AffineHost returns the host a block is affine to, if any.
func (b *Block) AffineHost() (string, bool) {
	if b.Affinity == nil {
		return "", false
	}
	h, ok := strings.CutPrefix(*b.Affinity, "host:")
	return h, ok
}
