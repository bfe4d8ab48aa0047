package api

import (
	"fmt"
	"net/netip"
)

// KindIPPool is the IPPool kind.
const KindIPPool = "IPPool"

// Encapsulation modes of a pool.
type (
	VXLANMode string
	IPIPMode  string
)

// Encapsulation mode values (the same for VXLAN and IPIP).
const (
	VXLANModeNever       VXLANMode = "Never"
	VXLANModeAlways      VXLANMode = "Always"
	VXLANModeCrossSubnet VXLANMode = "CrossSubnet"
	IPIPModeNever        IPIPMode  = "Never"
	IPIPModeAlways       IPIPMode  = "Always"
	IPIPModeCrossSubnet  IPIPMode  = "CrossSubnet"
)

// IPPoolAllowedUse says what addresses from a pool may be used for.
type IPPoolAllowedUse string

// Allowed uses.
const (
	AllowedUseWorkload     IPPoolAllowedUse = "Workload"
	AllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	AllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

// AssignmentMode says whether IPAM picks a pool on its own or only on request.
type AssignmentMode string

// Assignment modes.
const (
	AssignmentAutomatic AssignmentMode = "Automatic"
	AssignmentManual    AssignmentMode = "Manual"
)

// Default block sizes and the allowed ranges.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
	MinBlockSizeV4     = 20
	MinBlockSizeV6     = 116
)

// IPPool is a range of addresses IPAM hands out from, with its routing mode.
type IPPool struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       IPPoolSpec `json:"spec"`
}

// IPPoolSpec is an IPPool's configuration, field order as upstream.
type IPPoolSpec struct {
	CIDR              string             `json:"cidr"`
	VXLANMode         VXLANMode          `json:"vxlanMode,omitempty"`
	IPIPMode          IPIPMode           `json:"ipipMode,omitempty"`
	NATOutgoing       bool               `json:"natOutgoing,omitempty"`
	Disabled          bool               `json:"disabled,omitempty"`
	DisableBGPExport  bool               `json:"disableBGPExport,omitempty"`
	BlockSize         int                `json:"blockSize,omitempty"`
	NodeSelector      string             `json:"nodeSelector,omitempty"`
	NamespaceSelector string             `json:"namespaceSelector,omitempty"`
	AllowedUses       []IPPoolAllowedUse `json:"allowedUses,omitempty"`
	AssignmentMode    *AssignmentMode    `json:"assignmentMode,omitempty"`
}

// NewIPPool returns an empty IPPool with its TypeMeta set.
func NewIPPool() *IPPool {
	return &IPPool{TypeMeta: TypeMeta{Kind: KindIPPool, APIVersion: APIVersion}}
}

// Prefix returns the pool's CIDR parsed, or the zero Prefix if it is invalid.
func (p *IPPool) Prefix() netip.Prefix {
	c, err := ParseCIDR(p.Spec.CIDR)
	if err != nil {
		return netip.Prefix{}
	}
	return c
}

// Allows reports whether the pool may be used for the given purpose.
func (p *IPPool) Allows(use IPPoolAllowedUse) bool {
	if len(p.Spec.AllowedUses) == 0 {
		return use == AllowedUseWorkload || use == AllowedUseTunnel
	}
	for _, u := range p.Spec.AllowedUses {
		if u == use {
			return true
		}
	}
	return false
}

// IsManual reports whether the pool is only used when asked for by name.
func (p *IPPool) IsManual() bool {
	return p.Spec.AssignmentMode != nil && *p.Spec.AssignmentMode == AssignmentManual
}

// Default fills in upstream's defaults and normalises the CIDR.
func (p *IPPool) Default() {
	s := &p.Spec
	c, err := ParseCIDR(s.CIDR)
	if err == nil {
		s.CIDR = c.String()
	}
	if s.BlockSize == 0 && err == nil {
		s.BlockSize = DefaultBlockSizeV4
		if c.Addr().Is6() {
			s.BlockSize = DefaultBlockSizeV6
		}
	}
	if s.NodeSelector == "" {
		s.NodeSelector = "all()"
	}
	if s.VXLANMode == "" {
		s.VXLANMode = VXLANModeNever
	}
	if s.IPIPMode == "" {
		s.IPIPMode = IPIPModeNever
	}
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []IPPoolAllowedUse{AllowedUseWorkload, AllowedUseTunnel}
	}
	if s.AssignmentMode == nil {
		m := AssignmentAutomatic
		s.AssignmentMode = &m
	}
}

var (
	linkLocalV4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocalV6 = netip.MustParsePrefix("fe80::/10")
)

// Validate checks the pool's fields.
func (p *IPPool) Validate() error {
	var es errs
	s := &p.Spec
	c, err := ParseCIDR(s.CIDR)
	if s.CIDR == "" {
		es.add(fieldErr("spec.cidr", nil, "a CIDR is required"))
	} else if err != nil {
		es.add(fieldErr("spec.cidr", s.CIDR, "not a valid CIDR"))
	}
	if err == nil {
		bits := c.Bits()
		lo, hi := MinBlockSizeV4, 32
		if c.Addr().Is6() {
			lo, hi = MinBlockSizeV6, 128
		}
		if s.BlockSize != 0 && (s.BlockSize < lo || s.BlockSize > hi) {
			fam := "IPv4"
			if c.Addr().Is6() {
				fam = "IPv6"
			}
			es.add(fieldErr("spec.blockSize", s.BlockSize, "must be between %d and %d for an %s pool", lo, hi, fam))
		} else if !s.Disabled && s.BlockSize != 0 && bits > s.BlockSize {
			es.add(fieldErr("spec.cidr", s.CIDR, "the pool is smaller than one block (/%d): use a shorter prefix or a larger blockSize", s.BlockSize))
		}
		if (c.Addr().Is4() && c.Overlaps(linkLocalV4)) || (c.Addr().Is6() && c.Overlaps(linkLocalV6)) {
			es.add(fieldErr("spec.cidr", s.CIDR, "overlaps the link-local range"))
		}
		if c.Addr().Is6() && (s.IPIPMode != "" && s.IPIPMode != IPIPModeNever) {
			es.add(fieldErr("spec.ipipMode", string(s.IPIPMode), "IPIP is not supported for IPv6 pools"))
		}
	}
	if s.VXLANMode != "" {
		es.add(oneOf("spec.vxlanMode", s.VXLANMode, VXLANModeNever, VXLANModeAlways, VXLANModeCrossSubnet))
	}
	if s.IPIPMode != "" {
		es.add(oneOf("spec.ipipMode", s.IPIPMode, IPIPModeNever, IPIPModeAlways, IPIPModeCrossSubnet))
	}
	if s.VXLANMode != "" && s.VXLANMode != VXLANModeNever && s.IPIPMode != "" && s.IPIPMode != IPIPModeNever {
		es.add(fieldErr("spec", nil, "ipipMode and vxlanMode cannot both be enabled on one pool (ipipMode %s, vxlanMode %s)", s.IPIPMode, s.VXLANMode))
	}
	if s.NodeSelector != "" {
		es.add(ValidateSelector("spec.nodeSelector", s.NodeSelector))
	}
	if s.NamespaceSelector != "" {
		es.add(ValidateSelector("spec.namespaceSelector", s.NamespaceSelector))
	}
	seen := map[IPPoolAllowedUse]bool{}
	for i, u := range s.AllowedUses {
		f := fmt.Sprintf("spec.allowedUses[%d]", i)
		es.add(oneOf(f, u, AllowedUseWorkload, AllowedUseTunnel, AllowedUseLoadBalancer))
		if seen[u] {
			es.add(fieldErr(f, string(u), "listed twice"))
		}
		seen[u] = true
	}
	if seen[AllowedUseLoadBalancer] && (seen[AllowedUseWorkload] || seen[AllowedUseTunnel]) {
		es.add(fieldErr("spec.allowedUses", nil, "LoadBalancer cannot be combined with Workload or Tunnel"))
	}
	if s.AssignmentMode != nil {
		es.add(oneOf("spec.assignmentMode", *s.AssignmentMode, AssignmentAutomatic, AssignmentManual))
	}
	return es.err()
}

// ValidateUpdate refuses changes to the pool's CIDR and block size.
func (p *IPPool) ValidateUpdate(old Resource) error {
	o, ok := old.(*IPPool)
	if !ok {
		return nil
	}
	var es errs
	if oc, nc := o.Prefix(), p.Prefix(); oc != nc {
		es.add(fieldErr("spec.cidr", p.Spec.CIDR, "cannot be changed (was %s): create a new pool and delete this one", o.Spec.CIDR))
	}
	if o.Spec.BlockSize != p.Spec.BlockSize {
		es.add(fieldErr("spec.blockSize", p.Spec.BlockSize, "cannot be changed (was %d)", o.Spec.BlockSize))
	}
	return es.err()
}
