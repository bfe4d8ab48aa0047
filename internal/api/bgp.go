package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Kinds of the BGP resources.
const (
	KindBGPConfiguration = "BGPConfiguration"
	KindBGPPeer          = "BGPPeer"
)

// Names of the cluster-wide configuration objects and the prefix of the
// per-node ones ("node.<nodename>"), shared by BGPConfiguration and
// FelixConfiguration.
const (
	GlobalConfigName  = "default"
	NodeConfigPrefix  = "node."
	DefaultASNumber   = ASNumber(64512)
	DefaultListenPort = 179
)

// BGPConfiguration holds the cluster's BGP settings ("default") or one
// node's overrides ("node.<nodename>").
type BGPConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       BGPConfigurationSpec `json:"spec"`
}

// BGPConfigurationSpec has upstream's fields in upstream's order. Upstream's
// client stores exactly what it is given (no defaults are written); the
// documented defaults are what the Effective* accessors return.
type BGPConfigurationSpec struct {
	LogSeverityScreen              string                       `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled          *bool                        `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber                       *ASNumber                    `json:"asNumber,omitempty"`
	ServiceLoadBalancerIPs         []ServiceLoadBalancerIPBlock `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs             []ServiceExternalIPBlock     `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs              []ServiceClusterIPBlock      `json:"serviceClusterIPs,omitempty"`
	ServiceLoadBalancerAggregation *string                      `json:"serviceLoadBalancerAggregation,omitempty"`
	Communities                    []Community                  `json:"communities,omitempty"`
	PrefixAdvertisements           []PrefixAdvertisement        `json:"prefixAdvertisements,omitempty"`
	ListenPort                     uint16                       `json:"listenPort,omitempty"`
	NodeMeshPassword               *BGPPassword                 `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime         *Duration                    `json:"nodeMeshMaxRestartTime,omitempty"`
	BindMode                       *string                      `json:"bindMode,omitempty"`
	IgnoredInterfaces              []string                     `json:"ignoredInterfaces,omitempty"`
	LocalWorkloadPeeringIPV4       string                       `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6       string                       `json:"localWorkloadPeeringIPV6,omitempty"`
	ProgramClusterRoutes           *string                      `json:"programClusterRoutes,omitempty"`
	IPv4NormalRoutePriority        *int                         `json:"ipv4NormalRoutePriority,omitempty"`
	IPv6NormalRoutePriority        *int                         `json:"ipv6NormalRoutePriority,omitempty"`
}

// ServiceLoadBalancerIPBlock is a CIDR of LoadBalancer IPs to advertise.
type ServiceLoadBalancerIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceExternalIPBlock is a CIDR of Service external IPs to advertise.
type ServiceExternalIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// ServiceClusterIPBlock is a CIDR of Service cluster IPs to advertise.
type ServiceClusterIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// Community names a standard ("aa:nn") or large ("aa:nn:mm") BGP community.
type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement attaches communities (names or values) to a CIDR.
type PrefixAdvertisement struct {
	CIDR        string   `json:"cidr,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

// BGPPassword says where a BGP session password comes from.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// SecretKeySelector is Kubernetes' reference to one key of a Secret, with
// its JSON (key is always written).
type SecretKeySelector struct {
	Name     string `json:"name,omitempty"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// Enum values of the BGP resources.
const (
	BindModeNone   = "None"
	BindModeNodeIP = "NodeIP"

	SourceAddressUseNodeIP = "UseNodeIP"
	SourceAddressNone      = "None"

	NextHopModeAuto = "Auto"
	NextHopModeSelf = "Self"
	NextHopModeKeep = "Keep"

	ReversePeeringAuto   = "Auto"
	ReversePeeringManual = "Manual"

	Enabled  = "Enabled"
	Disabled = "Disabled"
)

// NewBGPConfiguration returns an empty BGPConfiguration with its TypeMeta set.
func NewBGPConfiguration() *BGPConfiguration {
	return &BGPConfiguration{TypeMeta: TypeMeta{Kind: KindBGPConfiguration, APIVersion: APIVersion}}
}

// NodeConfigName returns the name of a node's own configuration object.
func NodeConfigName(node string) string { return NodeConfigPrefix + node }

// MeshEnabled reports nodeToNodeMeshEnabled, which defaults to true.
func (s *BGPConfigurationSpec) MeshEnabled() bool {
	return s.NodeToNodeMeshEnabled == nil || *s.NodeToNodeMeshEnabled
}

// EffectiveASNumber returns asNumber or its default, 64512.
func (s *BGPConfigurationSpec) EffectiveASNumber() ASNumber {
	if s.ASNumber == nil {
		return DefaultASNumber
	}
	return *s.ASNumber
}

// EffectiveListenPort returns listenPort or its default, 179.
func (s *BGPConfigurationSpec) EffectiveListenPort() uint16 {
	if s.ListenPort == 0 {
		return DefaultListenPort
	}
	return s.ListenPort
}

// EffectiveLogSeverity returns logSeverityScreen or its default, Info.
func (s *BGPConfigurationSpec) EffectiveLogSeverity() string {
	if s.LogSeverityScreen == "" {
		return "Info"
	}
	return s.LogSeverityScreen
}

var (
	communityValue = lazyRegexp(`^(\d+):(\d+)$|^(\d+):(\d+):(\d+)$`)
	// Interface names or patterns in ignoredInterfaces ("eth*", "docker0").
	ifacePattern = lazyRegexp(`^[a-zA-Z0-9_.*\-]{1,15}$`)
)

// validateConfigName checks a name is "default" or "node.<nodename>".
func validateConfigName(name string) error {
	if name == GlobalConfigName {
		return nil
	}
	if node, ok := strings.CutPrefix(name, NodeConfigPrefix); ok {
		if err := ValidateName("metadata.name", node); err != nil {
			return fieldErr("metadata.name", name, "the part after %q must be a node name", NodeConfigPrefix)
		}
		return nil
	}
	return fieldErr("metadata.name", name, "must be %q or %q followed by a node name", GlobalConfigName, NodeConfigPrefix)
}

func validateLogSeverity(field, v string, extra ...string) error {
	allowed := append([]string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal"}, extra...)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return nil
		}
	}
	return fieldErr(field, v, "must be one of %s", strings.Join(allowed, ", "))
}

// validateCommunityValue checks "aa:nn" (16-bit parts) or "aa:nn:mm" (32-bit parts).
func validateCommunityValue(field, v string) error {
	m := communityValue().FindStringSubmatch(v)
	if m == nil {
		return fieldErr(field, v, "must be a community value aa:nn or aa:nn:mm")
	}
	bits, parts := 16, m[1:3]
	if m[1] == "" {
		bits, parts = 32, m[3:6]
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, bits); err != nil {
			return fieldErr(field, v, "each part of a community must fit in %d bits", bits)
		}
	}
	return nil
}

func (p *BGPPassword) validate(field string) error {
	if p.SecretKeyRef == nil {
		return fieldErr(field+".secretKeyRef", nil, "is required")
	}
	var es errs
	if p.SecretKeyRef.Name == "" {
		es.add(fieldErr(field+".secretKeyRef.name", nil, "a secret name is required"))
	}
	if p.SecretKeyRef.Key == "" {
		es.add(fieldErr(field+".secretKeyRef.key", nil, "a key is required"))
	}
	return es.err()
}

func validateDuration(field string, d *Duration) error {
	if d != nil && d.Duration < 0 {
		return fieldErr(field, d.Duration.String(), "must not be negative")
	}
	return nil
}

func validateEnumPtr(field string, v *string, allowed ...string) error {
	if v == nil {
		return nil
	}
	return oneOf(field, *v, allowed...)
}

// Validate checks the name, the enums and addresses, and that the fields
// upstream allows only on "default" are not set on per-node objects.
func (b *BGPConfiguration) Validate() error {
	var es errs
	s := &b.Spec
	es.add(validateConfigName(b.Name))
	if s.LogSeverityScreen != "" {
		es.add(validateLogSeverity("spec.logSeverityScreen", s.LogSeverityScreen))
	}
	for i, blk := range s.ServiceLoadBalancerIPs {
		es.add(validateCIDRField(fmt.Sprintf("spec.serviceLoadBalancerIPs[%d].cidr", i), blk.CIDR))
	}
	for i, blk := range s.ServiceExternalIPs {
		es.add(validateCIDRField(fmt.Sprintf("spec.serviceExternalIPs[%d].cidr", i), blk.CIDR))
	}
	for i, blk := range s.ServiceClusterIPs {
		es.add(validateCIDRField(fmt.Sprintf("spec.serviceClusterIPs[%d].cidr", i), blk.CIDR))
	}
	es.add(validateEnumPtr("spec.serviceLoadBalancerAggregation", s.ServiceLoadBalancerAggregation, Enabled, Disabled))
	names := map[string]bool{}
	for i, c := range s.Communities {
		f := fmt.Sprintf("spec.communities[%d]", i)
		if c.Name == "" {
			es.add(fieldErr(f+".name", nil, "a name is required"))
		} else {
			es.add(ValidateName(f+".name", c.Name))
		}
		es.add(validateCommunityValue(f+".value", c.Value))
		names[c.Name] = true
	}
	for i, pa := range s.PrefixAdvertisements {
		f := fmt.Sprintf("spec.prefixAdvertisements[%d]", i)
		if pa.CIDR == "" {
			es.add(fieldErr(f+".cidr", nil, "a CIDR is required"))
		} else {
			es.add(validateCIDRField(f+".cidr", pa.CIDR))
		}
		if len(pa.Communities) == 0 {
			es.add(fieldErr(f+".communities", nil, "at least one community is required"))
		}
		for j, c := range pa.Communities {
			if !names[c] && validateCommunityValue("", c) != nil {
				es.add(fieldErr(fmt.Sprintf("%s.communities[%d]", f, j), c, "neither a community defined in spec.communities nor a value aa:nn or aa:nn:mm"))
			}
		}
	}
	if s.NodeMeshPassword != nil {
		es.add(s.NodeMeshPassword.validate("spec.nodeMeshPassword"))
	}
	es.add(validateDuration("spec.nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime))
	if !s.MeshEnabled() {
		if s.NodeMeshPassword != nil {
			es.add(fieldErr("spec.nodeMeshPassword", nil, "needs the node-to-node mesh enabled"))
		}
		if s.NodeMeshMaxRestartTime != nil {
			es.add(fieldErr("spec.nodeMeshMaxRestartTime", nil, "needs the node-to-node mesh enabled"))
		}
	}
	es.add(validateEnumPtr("spec.bindMode", s.BindMode, BindModeNone, BindModeNodeIP))
	for i, n := range s.IgnoredInterfaces {
		switch {
		case n == "*":
			es.add(fieldErr(fmt.Sprintf("spec.ignoredInterfaces[%d]", i), n, "\"*\" alone would ignore every interface; name interfaces or patterns such as \"eth*\""))
		case !ifacePattern().MatchString(n):
			es.add(fieldErr(fmt.Sprintf("spec.ignoredInterfaces[%d]", i), n, "not an interface name or pattern (letters, digits, '_', '.', '-' and the wildcard '*', at most 15 characters)"))
		}
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		es.add(validateIP("spec.localWorkloadPeeringIPV4", s.LocalWorkloadPeeringIPV4, 32))
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		es.add(validateIP("spec.localWorkloadPeeringIPV6", s.LocalWorkloadPeeringIPV6, 128))
	}
	es.add(validateEnumPtr("spec.programClusterRoutes", s.ProgramClusterRoutes, Enabled, Disabled))
	es.add(validateIntRange("spec.ipv4NormalRoutePriority", s.IPv4NormalRoutePriority, 1, 2147483646))
	es.add(validateIntRange("spec.ipv6NormalRoutePriority", s.IPv6NormalRoutePriority, 1, 2147483646))
	if b.Name != GlobalConfigName {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"nodeToNodeMeshEnabled", s.NodeToNodeMeshEnabled != nil},
			{"asNumber", s.ASNumber != nil},
			{"serviceLoadBalancerIPs", len(s.ServiceLoadBalancerIPs) > 0},
			{"serviceExternalIPs", len(s.ServiceExternalIPs) > 0},
			{"serviceClusterIPs", len(s.ServiceClusterIPs) > 0},
			{"nodeMeshPassword", s.NodeMeshPassword != nil},
			{"nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime != nil},
		} {
			if f.set {
				es.add(fieldErr("spec."+f.name, nil, "can only be set on the %q BGPConfiguration", GlobalConfigName))
			}
		}
	}
	return es.err()
}

func validateCIDRField(field, s string) error {
	if _, err := ParseCIDR(s); err != nil {
		return fieldErr(field, s, "not a valid CIDR")
	}
	return nil
}

func validateIntRange[T int | int32 | int64](field string, v *T, lo, hi T) error {
	if v != nil && (*v < lo || *v > hi) {
		return fieldErr(field, *v, "must be between %d and %d", lo, hi)
	}
	return nil
}

// BGPPeer is an explicit BGP session: from the nodes it selects to a peer
// address, to the nodes a peerSelector picks, or to a local workload.
type BGPPeer struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec has upstream's fields in upstream's order.
type BGPPeerSpec struct {
	Node                     string       `json:"node,omitempty"`
	NodeSelector             string       `json:"nodeSelector,omitempty"`
	PeerIP                   string       `json:"peerIP,omitempty"`
	ASNumber                 ASNumber     `json:"asNumber,omitempty"`
	LocalASNumber            *ASNumber    `json:"localASNumber,omitempty"`
	PeerSelector             string       `json:"peerSelector,omitempty"`
	KeepOriginalNextHop      bool         `json:"keepOriginalNextHop,omitempty"`
	NextHopMode              *string      `json:"nextHopMode,omitempty"`
	Password                 *BGPPassword `json:"password,omitempty"`
	SourceAddress            string       `json:"sourceAddress,omitempty"`
	MaxRestartTime           *Duration    `json:"maxRestartTime,omitempty"`
	KeepaliveTime            *Duration    `json:"keepaliveTime,omitempty"`
	NumAllowedLocalASNumbers *int32       `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8       `json:"ttlSecurity,omitempty"`
	ReachableBy              string       `json:"reachableBy,omitempty"`
	Filters                  []string     `json:"filters,omitempty"`
	LocalWorkloadSelector    string       `json:"localWorkloadSelector,omitempty"`
	ReversePeering           *string      `json:"reversePeering,omitempty"`
}

// NewBGPPeer returns an empty BGPPeer with its TypeMeta set.
func NewBGPPeer() *BGPPeer {
	return &BGPPeer{TypeMeta: TypeMeta{Kind: KindBGPPeer, APIVersion: APIVersion}}
}

// ParsePeerIP reads a peerIP: "10.0.0.1", "10.0.0.1:1179", "fd00::1" or
// "[fd00::1]:1179". The port is 0 when none is given.
func ParsePeerIP(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a, 0, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" || ap.Port() == 0 {
		return netip.Addr{}, 0, fmt.Errorf("invalid peer address %q: want IP, IPv4:port or [IPv6]:port", s)
	}
	if ap.Addr().Is4In6() {
		return netip.Addr{}, 0, fmt.Errorf("invalid peer address %q: IPv4-mapped IPv6 is not allowed", s)
	}
	return ap.Addr(), ap.Port(), nil
}

// Validate applies upstream's rules: peerIP, peerSelector and
// localWorkloadSelector are exclusive and one is required; node and
// nodeSelector are exclusive; selectors parse; enums are known.
func (p *BGPPeer) Validate() error {
	var es errs
	s := &p.Spec
	if s.Node != "" {
		es.add(ValidateName("spec.node", s.Node))
		if s.NodeSelector != "" {
			es.add(fieldErr("spec.nodeSelector", s.NodeSelector, "cannot be set together with spec.node"))
		}
	}
	if s.NodeSelector != "" {
		es.add(ValidateSelector("spec.nodeSelector", s.NodeSelector))
	}
	var peerAddr netip.Addr
	if s.PeerIP != "" {
		a, _, err := ParsePeerIP(s.PeerIP)
		if err != nil {
			es.add(fieldErr("spec.peerIP", s.PeerIP, "must be an IP, IPv4:port or [IPv6]:port"))
		}
		peerAddr = a
	}
	if s.PeerSelector != "" {
		es.add(ValidateSelector("spec.peerSelector", s.PeerSelector))
	}
	if s.LocalWorkloadSelector != "" {
		es.add(ValidateSelector("spec.localWorkloadSelector", s.LocalWorkloadSelector))
	}
	switch {
	case s.PeerIP != "" && s.PeerSelector != "":
		es.add(fieldErr("spec.peerSelector", s.PeerSelector, "cannot be set together with spec.peerIP"))
	case s.LocalWorkloadSelector != "" && (s.PeerIP != "" || s.PeerSelector != ""):
		es.add(fieldErr("spec.localWorkloadSelector", s.LocalWorkloadSelector, "cannot be set together with spec.peerIP or spec.peerSelector"))
	case s.PeerIP == "" && s.PeerSelector == "" && s.LocalWorkloadSelector == "":
		es.add(fieldErr("spec.peerIP", nil, "set peerIP, peerSelector or localWorkloadSelector"))
	}
	if s.PeerSelector != "" && s.ASNumber != 0 {
		es.add(fieldErr("spec.asNumber", s.ASNumber.String(), "must be empty when peerSelector is set: the peers' own AS numbers are used"))
	}
	if s.LocalWorkloadSelector != "" && s.ASNumber == 0 {
		es.add(fieldErr("spec.asNumber", nil, "is required when localWorkloadSelector is set"))
	}
	if s.Password != nil {
		es.add(s.Password.validate("spec.password"))
	}
	if s.SourceAddress != "" {
		es.add(oneOf("spec.sourceAddress", s.SourceAddress, SourceAddressUseNodeIP, SourceAddressNone))
	}
	es.add(validateEnumPtr("spec.nextHopMode", s.NextHopMode, NextHopModeAuto, NextHopModeSelf, NextHopModeKeep))
	es.add(validateEnumPtr("spec.reversePeering", s.ReversePeering, ReversePeeringAuto, ReversePeeringManual))
	es.add(validateDuration("spec.maxRestartTime", s.MaxRestartTime))
	es.add(validateDuration("spec.keepaliveTime", s.KeepaliveTime))
	if s.NumAllowedLocalASNumbers != nil && *s.NumAllowedLocalASNumbers < 0 {
		es.add(fieldErr("spec.numAllowedLocalASNumbers", *s.NumAllowedLocalASNumbers, "must not be negative"))
	}
	if s.ReachableBy != "" {
		gw, err := netip.ParseAddr(s.ReachableBy)
		switch {
		case err != nil || gw.Zone() != "":
			es.add(fieldErr("spec.reachableBy", s.ReachableBy, "must be an IP address"))
		case s.PeerIP == "":
			es.add(fieldErr("spec.reachableBy", s.ReachableBy, "needs spec.peerIP"))
		case peerAddr.IsValid() && peerAddr.Is4() != gw.Is4():
			es.add(fieldErr("spec.reachableBy", s.ReachableBy, "must be of the same IP family as spec.peerIP"))
		}
	}
	for i, f := range s.Filters {
		es.add(ValidateName(fmt.Sprintf("spec.filters[%d]", i), f))
	}
	return es.err()
}
