package api

// KindIPAMConfiguration is the IPAMConfiguration kind.
const KindIPAMConfiguration = "IPAMConfiguration"

// IPAMConfiguration is the v3 IPAM settings resource
// (ipamconfigurations/default). As upstream's IPAM library in etcd mode,
// ours reads /calico/ipam/v2/config (IPAMConfig, set by `calicoctl ipam
// configure`) and not this resource: it is stored and validated only.
type IPAMConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       IPAMConfigurationSpec `json:"spec"`
}

// IPAMConfigurationSpec are the IPAM settings.
type IPAMConfigurationSpec struct {
	StrictAffinity               bool    `json:"strictAffinity"`
	MaxBlocksPerHost             int32   `json:"maxBlocksPerHost,omitempty"`
	AutoAllocateBlocks           bool    `json:"autoAllocateBlocks"`
	KubeVirtVMAddressPersistence *string `json:"kubeVirtVMAddressPersistence,omitempty"`
	IPCooldownSeconds            *int32  `json:"ipCooldownSeconds,omitempty"`
}

// NewIPAMConfiguration returns an empty IPAMConfiguration with its TypeMeta set.
func NewIPAMConfiguration() *IPAMConfiguration {
	return &IPAMConfiguration{TypeMeta: TypeMeta{Kind: KindIPAMConfiguration, APIVersion: APIVersion}}
}

// Validate checks the name (only "default", as upstream's client requires)
// and the ranges.
func (c *IPAMConfiguration) Validate() error {
	var es errs
	if c.Name != "default" {
		es.add(fieldErr("metadata.name", c.Name, "the only IPAMConfiguration is named \"default\""))
	}
	if m := c.Spec.MaxBlocksPerHost; m < 0 || m > 1000000 {
		es.add(fieldErr("spec.maxBlocksPerHost", m, "must be between 0 and 1000000"))
	}
	if p := c.Spec.KubeVirtVMAddressPersistence; p != nil {
		es.add(oneOf("spec.kubeVirtVMAddressPersistence", *p, "Enabled", "Disabled"))
	}
	if s := c.Spec.IPCooldownSeconds; s != nil && *s < 0 {
		es.add(fieldErr("spec.ipCooldownSeconds", *s, "must not be negative"))
	}
	return es.err()
}
