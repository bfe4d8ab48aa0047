package api

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// KindFelixConfiguration is the FelixConfiguration kind.
const KindFelixConfiguration = "FelixConfiguration"

// FelixConfiguration holds dataplane settings: cluster-wide ("default"),
// per node ("node.<nodename>"), or for the nodes a spec.nodeSelector picks.
type FelixConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       FelixConfigurationSpec `json:"spec"`
}

// FelixConfigurationSpec has every field of upstream's spec, with its JSON
// name, type and order. Nearly all are optional and omitted when unset;
// bpfLogLevel is always written, as upstream writes it ("bpfLogLevel":"").
// Upstream's client stores what it is given; the defaults in the field
// documentation are applied by Felix when it reads the configuration.
//
// Struct tags beyond json: confignamev1 is the Felix parameter name where it
// differs from the field name (it gives the FELIX_* environment alias),
// timescale says how a bare number in that variable is read ("ms", else
// seconds), and fv holds the field rule checked by Validate (see
// validateTagged).
type FelixConfigurationSpec struct {
	NodeSelector                             *string                 `json:"nodeSelector,omitempty" confignamev1:"-" fv:"selector"`
	UseInternalDataplaneDriver               *bool                   `json:"useInternalDataplaneDriver,omitempty"`
	DataplaneDriver                          string                  `json:"dataplaneDriver,omitempty"`
	DataplaneWatchdogTimeout                 *Duration               `json:"dataplaneWatchdogTimeout,omitempty"`
	IPv6Support                              *bool                   `json:"ipv6Support,omitempty" confignamev1:"Ipv6Support"`
	RouteRefreshInterval                     *Duration               `json:"routeRefreshInterval,omitempty"`
	InterfaceRefreshInterval                 *Duration               `json:"interfaceRefreshInterval,omitempty"`
	IptablesRefreshInterval                  *Duration               `json:"iptablesRefreshInterval,omitempty"`
	IptablesPostWriteCheckInterval           *Duration               `json:"iptablesPostWriteCheckInterval,omitempty" confignamev1:"IptablesPostWriteCheckIntervalSecs"`
	IptablesLockProbeInterval                *Duration               `json:"iptablesLockProbeInterval,omitempty" confignamev1:"IptablesLockProbeIntervalMillis" timescale:"ms"`
	FeatureDetectOverride                    string                  `json:"featureDetectOverride,omitempty" fv:"kvlist"`
	FeatureGates                             string                  `json:"featureGates,omitempty" fv:"kvlist"`
	IpsetsRefreshInterval                    *Duration               `json:"ipsetsRefreshInterval,omitempty"`
	MaxIpsetSize                             *int                    `json:"maxIpsetSize,omitempty" fv:"range=0:"`
	IptablesBackend                          *string                 `json:"iptablesBackend,omitempty" fv:"enum=Legacy|NFT|Auto"`
	XDPRefreshInterval                       *Duration               `json:"xdpRefreshInterval,omitempty"`
	NetlinkTimeout                           *Duration               `json:"netlinkTimeout,omitempty" confignamev1:"NetlinkTimeoutSecs"`
	MetadataAddr                             string                  `json:"metadataAddr,omitempty"`
	MetadataPort                             *int                    `json:"metadataPort,omitempty" fv:"range=0:65535"`
	OpenstackRegion                          string                  `json:"openstackRegion,omitempty"`
	InterfacePrefix                          string                  `json:"interfacePrefix,omitempty"`
	InterfaceExclude                         string                  `json:"interfaceExclude,omitempty"`
	ChainInsertMode                          string                  `json:"chainInsertMode,omitempty" fv:"enum=Insert|Append"`
	DefaultEndpointToHostAction              string                  `json:"defaultEndpointToHostAction,omitempty" fv:"enum=Drop|Accept|Return"`
	IptablesFilterAllowAction                string                  `json:"iptablesFilterAllowAction,omitempty" fv:"enum=Accept|Return"`
	IptablesMangleAllowAction                string                  `json:"iptablesMangleAllowAction,omitempty" fv:"enum=Accept|Return"`
	IptablesFilterDenyAction                 string                  `json:"iptablesFilterDenyAction,omitempty" fv:"enum=Drop|Reject"`
	LogPrefix                                string                  `json:"logPrefix,omitempty" fv:"logPrefix"`
	LogActionRateLimit                       *string                 `json:"logActionRateLimit,omitempty" fv:"rateLimit"`
	LogActionRateLimitBurst                  *int                    `json:"logActionRateLimitBurst,omitempty" fv:"range=0:9999"`
	LogFilePath                              string                  `json:"logFilePath,omitempty"`
	LogSeverityFile                          string                  `json:"logSeverityFile,omitempty" fv:"enum=Trace|Debug|Info|Warning|Error|Fatal"`
	LogSeverityScreen                        string                  `json:"logSeverityScreen,omitempty" fv:"enum=Trace|Debug|Info|Warning|Error|Fatal"`
	LogSeveritySys                           string                  `json:"logSeveritySys,omitempty" fv:"enum=Trace|Debug|Info|Warning|Error|Fatal|None"`
	LogDebugFilenameRegex                    string                  `json:"logDebugFilenameRegex,omitempty" fv:"regexp"`
	IPIPEnabled                              *bool                   `json:"ipipEnabled,omitempty" confignamev1:"IpInIpEnabled"`
	IPIPMTU                                  *int                    `json:"ipipMTU,omitempty" confignamev1:"IpInIpMtu" fv:"range=0:65535"`
	VXLANEnabled                             *bool                   `json:"vxlanEnabled,omitempty"`
	VXLANMTU                                 *int                    `json:"vxlanMTU,omitempty" fv:"range=0:65535"`
	VXLANMTUV6                               *int                    `json:"vxlanMTUV6,omitempty" fv:"range=0:65535"`
	VXLANPort                                *int                    `json:"vxlanPort,omitempty" fv:"range=0:65535"`
	VXLANVNI                                 *int                    `json:"vxlanVNI,omitempty" fv:"range=0:16777215"`
	AllowVXLANPacketsFromWorkloads           *bool                   `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads            *bool                   `json:"allowIPIPPacketsFromWorkloads,omitempty"`
	ReportingInterval                        *Duration               `json:"reportingInterval,omitempty" confignamev1:"ReportingIntervalSecs"`
	ReportingTTL                             *Duration               `json:"reportingTTL,omitempty" confignamev1:"ReportingTTLSecs"`
	EndpointReportingEnabled                 *bool                   `json:"endpointReportingEnabled,omitempty"`
	EndpointReportingDelay                   *Duration               `json:"endpointReportingDelay,omitempty" confignamev1:"EndpointReportingDelaySecs"`
	EndpointStatusPathPrefix                 string                  `json:"endpointStatusPathPrefix,omitempty"`
	IptablesMarkMask                         *int64                  `json:"iptablesMarkMask,omitempty" fv:"range=0:4294967295"`
	DisableConntrackInvalidCheck             *bool                   `json:"disableConntrackInvalidCheck,omitempty"`
	HealthEnabled                            *bool                   `json:"healthEnabled,omitempty"`
	HealthHost                               *string                 `json:"healthHost,omitempty"`
	HealthPort                               *int                    `json:"healthPort,omitempty" fv:"range=0:65535"`
	HealthTimeoutOverrides                   []HealthTimeoutOverride `json:"healthTimeoutOverrides,omitempty"`
	PrometheusMetricsEnabled                 *bool                   `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost                    string                  `json:"prometheusMetricsHost,omitempty"`
	PrometheusMetricsPort                    *int                    `json:"prometheusMetricsPort,omitempty" fv:"range=0:65535"`
	PrometheusGoMetricsEnabled               *bool                   `json:"prometheusGoMetricsEnabled,omitempty"`
	PrometheusProcessMetricsEnabled          *bool                   `json:"prometheusProcessMetricsEnabled,omitempty"`
	PrometheusWireGuardMetricsEnabled        *bool                   `json:"prometheusWireGuardMetricsEnabled,omitempty"`
	PrometheusMetricsCAFile                  *string                 `json:"prometheusMetricsCAFile,omitempty"`
	PrometheusMetricsCertFile                *string                 `json:"prometheusMetricsCertFile,omitempty"`
	PrometheusMetricsKeyFile                 *string                 `json:"prometheusMetricsKeyFile,omitempty"`
	PrometheusMetricsClientAuth              *string                 `json:"prometheusMetricsClientAuth,omitempty" fv:"enum=RequireAndVerifyClientCert|RequireAnyClientCert|VerifyClientCertIfGiven|NoClientCert"`
	FailsafeInboundHostPorts                 *[]ProtoPort            `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts                *[]ProtoPort            `json:"failsafeOutboundHostPorts,omitempty"`
	KubeNodePortRanges                       *[]Port                 `json:"kubeNodePortRanges,omitempty" fv:"maxItems=7"`
	PolicySyncPathPrefix                     string                  `json:"policySyncPathPrefix,omitempty"`
	UsageReportingEnabled                    *bool                   `json:"usageReportingEnabled,omitempty"`
	UsageReportingInitialDelay               *Duration               `json:"usageReportingInitialDelay,omitempty" confignamev1:"UsageReportingInitialDelaySecs"`
	UsageReportingInterval                   *Duration               `json:"usageReportingInterval,omitempty" confignamev1:"UsageReportingIntervalSecs"`
	NATPortRange                             *Port                   `json:"natPortRange,omitempty"`
	NATOutgoingAddress                       string                  `json:"natOutgoingAddress,omitempty" fv:"ipv4"`
	NATOutgoingExclusions                    *string                 `json:"natOutgoingExclusions,omitempty" fv:"enum=IPPoolsOnly|IPPoolsAndHostIPs"`
	DeviceRouteSourceAddress                 string                  `json:"deviceRouteSourceAddress,omitempty" fv:"ipv4"`
	DeviceRouteSourceAddressIPv6             string                  `json:"deviceRouteSourceAddressIPv6,omitempty" fv:"ipv6"`
	DeviceRouteProtocol                      *int                    `json:"deviceRouteProtocol,omitempty" fv:"range=0:255"`
	RemoveExternalRoutes                     *bool                   `json:"removeExternalRoutes,omitempty"`
	ProgramClusterRoutes                     *string                 `json:"programClusterRoutes,omitempty" fv:"enum=Enabled|Disabled"`
	IPForwarding                             string                  `json:"ipForwarding,omitempty" fv:"enum=Enabled|Disabled"`
	ExternalNodesCIDRList                    *[]string               `json:"externalNodesList,omitempty" fv:"cidrs"`
	DebugMemoryProfilePath                   string                  `json:"debugMemoryProfilePath,omitempty"`
	DebugDisableLogDropping                  *bool                   `json:"debugDisableLogDropping,omitempty"`
	DebugSimulateCalcGraphHangAfter          *Duration               `json:"debugSimulateCalcGraphHangAfter,omitempty"`
	DebugSimulateDataplaneHangAfter          *Duration               `json:"debugSimulateDataplaneHangAfter,omitempty"`
	DebugSimulateDataplaneApplyDelay         *Duration               `json:"debugSimulateDataplaneApplyDelay,omitempty"`
	DebugHost                                *string                 `json:"debugHost,omitempty"`
	DebugPort                                *int                    `json:"debugPort,omitempty" fv:"range=0:65535"`
	IptablesNATOutgoingInterfaceFilter       string                  `json:"iptablesNATOutgoingInterfaceFilter,omitempty" fv:"ifaceFilter"`
	SidecarAccelerationEnabled               *bool                   `json:"sidecarAccelerationEnabled,omitempty"`
	XDPEnabled                               *bool                   `json:"xdpEnabled,omitempty"`
	GenericXDPEnabled                        *bool                   `json:"genericXDPEnabled,omitempty"`
	NFTablesMode                             *string                 `json:"nftablesMode,omitempty" fv:"enum=Disabled|Enabled|Auto"`
	NftablesRefreshInterval                  *Duration               `json:"nftablesRefreshInterval,omitempty"`
	NftablesFilterAllowAction                string                  `json:"nftablesFilterAllowAction,omitempty" fv:"enum=Accept|Return"`
	NftablesMangleAllowAction                string                  `json:"nftablesMangleAllowAction,omitempty" fv:"enum=Accept|Return"`
	NftablesFilterDenyAction                 string                  `json:"nftablesFilterDenyAction,omitempty" fv:"enum=Drop|Reject"`
	NftablesMarkMask                         *int64                  `json:"nftablesMarkMask,omitempty" fv:"range=0:4294967295"`
	BPFEnabled                               *bool                   `json:"bpfEnabled,omitempty"`
	BPFOverlayHostSourceIP                   *string                 `json:"bpfOverlayHostSourceIP,omitempty" fv:"enum=TunnelAddress|HostAddress"`
	BPFDisableUnprivileged                   *bool                   `json:"bpfDisableUnprivileged,omitempty"`
	BPFJITHardening                          *string                 `json:"bpfJITHardening,omitempty" fv:"enum=Auto|Strict"`
	BPFLogLevel                              string                  `json:"bpfLogLevel" fv:"enum=Off|Info|Debug"`
	BPFConntrackLogLevel                     string                  `json:"bpfConntrackLogLevel,omitempty" fv:"enum=Off|Debug"`
	BPFConntrackCleanupMode                  *string                 `json:"bpfConntrackMode,omitempty" fv:"enum=Auto|Userspace|BPFProgram"`
	BPFConntrackTimeouts                     *BPFConntrackTimeouts   `json:"bpfConntrackTimeouts,omitempty"`
	BPFIPFragTimeout                         *Duration               `json:"bpfIPFragTimeout,omitempty"`
	BPFLogFilters                            *map[string]string      `json:"bpfLogFilters,omitempty"`
	BPFCTLBLogFilter                         string                  `json:"bpfCTLBLogFilter,omitempty"`
	BPFDataIfacePattern                      string                  `json:"bpfDataIfacePattern,omitempty" fv:"regexp"`
	BPFL3IfacePattern                        string                  `json:"bpfL3IfacePattern,omitempty" fv:"regexp"`
	BPFConnectTimeLoadBalancingEnabled       *bool                   `json:"bpfConnectTimeLoadBalancingEnabled,omitempty"`
	BPFConnectTimeLoadBalancing              *string                 `json:"bpfConnectTimeLoadBalancing,omitempty" fv:"enum=TCP|Enabled|Disabled"`
	BPFHostNetworkedNATWithoutCTLB           *string                 `json:"bpfHostNetworkedNATWithoutCTLB,omitempty" fv:"enum=Enabled|Disabled"`
	BPFExternalServiceMode                   string                  `json:"bpfExternalServiceMode,omitempty" fv:"enum=Tunnel|DSR"`
	BPFDSROptoutCIDRs                        *[]string               `json:"bpfDSROptoutCIDRs,omitempty" fv:"cidrs"`
	BPFExtToServiceConnmark                  *int                    `json:"bpfExtToServiceConnmark,omitempty" fv:"range=0:4294967295"`
	BPFKubeProxyIptablesCleanupEnabled       *bool                   `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty"`
	BPFKubeProxyMinSyncPeriod                *Duration               `json:"bpfKubeProxyMinSyncPeriod,omitempty"`
	BPFKubeProxyHealthzPort                  *int                    `json:"bpfKubeProxyHealthzPort,omitempty" fv:"range=0:65535"`
	BPFPSNATPorts                            *Port                   `json:"bpfPSNATPorts,omitempty"`
	BPFMapSizeNATFrontend                    *int                    `json:"bpfMapSizeNATFrontend,omitempty" fv:"range=0:"`
	BPFMapSizeNATBackend                     *int                    `json:"bpfMapSizeNATBackend,omitempty" fv:"range=0:"`
	BPFMapSizeNATAffinity                    *int                    `json:"bpfMapSizeNATAffinity,omitempty" fv:"range=0:"`
	BPFMapSizeRoute                          *int                    `json:"bpfMapSizeRoute,omitempty" fv:"range=0:"`
	BPFMapSizeConntrack                      *int                    `json:"bpfMapSizeConntrack,omitempty" fv:"range=0:"`
	BPFMapSizePerCPUConntrack                *int                    `json:"bpfMapSizePerCpuConntrack,omitempty" fv:"range=0:"`
	BPFMapSizeConntrackScaling               string                  `json:"bpfMapSizeConntrackScaling,omitempty" fv:"enum=Disabled|DoubleIfFull"`
	BPFMapSizeConntrackCleanupQueue          *int                    `json:"bpfMapSizeConntrackCleanupQueue,omitempty" fv:"range=1:"`
	BPFMapSizeIPSets                         *int                    `json:"bpfMapSizeIPSets,omitempty" fv:"range=0:"`
	BPFMapSizeIfState                        *int                    `json:"bpfMapSizeIfState,omitempty" fv:"range=0:"`
	BPFHostConntrackBypass                   *bool                   `json:"bpfHostConntrackBypass,omitempty"`
	BPFIPFragmentReassemblyEnabled           *bool                   `json:"bpfIPFragmentReassemblyEnabled,omitempty"`
	BPFEnforceRPF                            string                  `json:"bpfEnforceRPF,omitempty" fv:"enum=Disabled|Strict|Loose"`
	BPFPolicyDebugEnabled                    *bool                   `json:"bpfPolicyDebugEnabled,omitempty"`
	BPFForceTrackPacketsFromIfaces           *[]string               `json:"bpfForceTrackPacketsFromIfaces,omitempty" fv:"ifaceFilter"`
	BPFDisableGROForIfaces                   string                  `json:"bpfDisableGROForIfaces,omitempty" fv:"regexp"`
	BPFExcludeCIDRsFromNAT                   *[]string               `json:"bpfExcludeCIDRsFromNAT,omitempty" fv:"cidrs"`
	BPFExportBufferSizeMB                    *int                    `json:"bpfExportBufferSizeMB,omitempty" fv:"range=0:"`
	IstioAmbientMode                         *string                 `json:"istioAmbientMode,omitempty" fv:"enum=Enabled|Disabled"`
	IstioDSCPMark                            *DSCP                   `json:"istioDSCPMark,omitempty"`
	CgroupV2Path                             string                  `json:"cgroupV2Path,omitempty"`
	FlowLogsPolicyEvaluationMode             *string                 `json:"flowLogsPolicyEvaluationMode,omitempty" fv:"enum=None|Continuous"`
	BPFRedirectToPeer                        string                  `json:"bpfRedirectToPeer,omitempty" fv:"enum=Enabled|Disabled|L2Only"`
	BPFAttachType                            *string                 `json:"bpfAttachType,omitempty" fv:"enum=TC|TCX"`
	FlowLogsFlushInterval                    *Duration               `json:"flowLogsFlushInterval,omitempty"`
	FlowLogsCollectorDebugTrace              *bool                   `json:"flowLogsCollectorDebugTrace,omitempty"`
	FlowLogsGoldmaneServer                   *string                 `json:"flowLogsGoldmaneServer,omitempty"`
	FlowLogsLocalReporter                    *string                 `json:"flowLogsLocalReporter,omitempty" fv:"enum=Disabled|Enabled"`
	FlowLogsSamplingRate                     *int                    `json:"flowLogsSamplingRate,omitempty" fv:"range=1:1000000"`
	BPFProfiling                             string                  `json:"bpfProfiling,omitempty" fv:"enum=Enabled|Disabled"`
	RouteSource                              string                  `json:"routeSource,omitempty" fv:"enum=WorkloadIPs|CalicoIPAM"`
	RouteTableRanges                         *RouteTableRanges       `json:"routeTableRanges,omitempty"`
	RouteTableRange                          *RouteTableRange        `json:"routeTableRange,omitempty"`
	RouteSyncDisabled                        *bool                   `json:"routeSyncDisabled,omitempty"`
	IPv4NormalRoutePriority                  *int                    `json:"ipv4NormalRoutePriority,omitempty" fv:"range=1:2147483646"`
	IPv4ElevatedRoutePriority                *int                    `json:"ipv4ElevatedRoutePriority,omitempty" fv:"range=1:2147483646"`
	IPv6NormalRoutePriority                  *int                    `json:"ipv6NormalRoutePriority,omitempty" fv:"range=1:2147483646"`
	IPv6ElevatedRoutePriority                *int                    `json:"ipv6ElevatedRoutePriority,omitempty" fv:"range=1:2147483646"`
	LiveMigrationRouteConvergenceTime        *Duration               `json:"liveMigrationRouteConvergenceTime,omitempty"`
	WireguardEnabled                         *bool                   `json:"wireguardEnabled,omitempty"`
	WireguardEnabledV6                       *bool                   `json:"wireguardEnabledV6,omitempty"`
	WireguardThreadingEnabled                *bool                   `json:"wireguardThreadingEnabled,omitempty"`
	WireguardListeningPort                   *int                    `json:"wireguardListeningPort,omitempty" fv:"range=1:65535"`
	WireguardListeningPortV6                 *int                    `json:"wireguardListeningPortV6,omitempty" fv:"range=1:65535"`
	WireguardRoutingRulePriority             *int                    `json:"wireguardRoutingRulePriority,omitempty" fv:"range=1:32765"`
	WireguardInterfaceName                   string                  `json:"wireguardInterfaceName,omitempty" fv:"iface"`
	WireguardInterfaceNameV6                 string                  `json:"wireguardInterfaceNameV6,omitempty" fv:"iface"`
	WireguardMTU                             *int                    `json:"wireguardMTU,omitempty" fv:"range=0:65535"`
	WireguardMTUV6                           *int                    `json:"wireguardMTUV6,omitempty" fv:"range=0:65535"`
	WireguardHostEncryptionEnabled           *bool                   `json:"wireguardHostEncryptionEnabled,omitempty"`
	WireguardPersistentKeepAlive             *Duration               `json:"wireguardKeepAlive,omitempty"`
	AWSSrcDstCheck                           *string                 `json:"awsSrcDstCheck,omitempty" fv:"enum=DoNothing|Enable|Disable"`
	ServiceLoopPrevention                    string                  `json:"serviceLoopPrevention,omitempty" fv:"enum=Drop|Reject|Disabled"`
	WorkloadSourceSpoofing                   string                  `json:"workloadSourceSpoofing,omitempty" fv:"enum=Disabled|Any"`
	MTUIfacePattern                          string                  `json:"mtuIfacePattern,omitempty" fv:"regexp"`
	FloatingIPs                              *string                 `json:"floatingIPs,omitempty" fv:"enum=Enabled|Disabled"`
	LocalSubnetL2Reachability                *string                 `json:"localSubnetL2Reachability,omitempty" fv:"enum=Disabled|PodsAndLoadBalancers"`
	LocalSubnetL2ReachabilityRefreshInterval *Duration               `json:"localSubnetL2ReachabilityRefreshInterval,omitempty"`
	WindowsManageFirewallRules               *string                 `json:"windowsManageFirewallRules,omitempty" fv:"enum=Enabled|Disabled"`
	GoGCThreshold                            *int                    `json:"goGCThreshold,omitempty" fv:"range=-1:"`
	GoMemoryLimitMB                          *int                    `json:"goMemoryLimitMB,omitempty" fv:"range=-1:"`
	GoMaxProcs                               *int                    `json:"goMaxProcs,omitempty" fv:"range=-1:"`
	RequireMTUFile                           *bool                   `json:"requireMTUFile,omitempty"`
	BPFMaglevMaxEndpointsPerService          *int                    `json:"bpfMaglevMaxEndpointsPerService,omitempty" fv:"range=1:3000"`
	BPFMaglevMaxServices                     *int                    `json:"bpfMaglevMaxServices,omitempty" fv:"range=1:3000"`
}

// HealthTimeoutOverride overrides one Felix component's watchdog timeout.
type HealthTimeoutOverride struct {
	Name    string   `json:"name"`
	Timeout Duration `json:"timeout"`
}

// RouteTableRange is the deprecated single range of route table indices (1-250).
type RouteTableRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// RouteTableIDRange is one range of route table indices.
type RouteTableIDRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// RouteTableRanges lists the route table index ranges Felix may use.
type RouteTableRanges []RouteTableIDRange

// ProtoPort is a failsafe port: protocol, port and optionally a CIDR.
type ProtoPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

// BPFConntrackTimeouts overrides the BPF conntrack timers; each is a
// duration or "Auto".
type BPFConntrackTimeouts struct {
	CreationGracePeriod *string `json:"creationGracePeriod,omitempty"`
	TCPSynSent          *string `json:"tcpSynSent,omitempty"`
	TCPEstablished      *string `json:"tcpEstablished,omitempty"`
	TCPFinsSeen         *string `json:"tcpFinsSeen,omitempty"`
	TCPResetSeen        *string `json:"tcpResetSeen,omitempty"`
	UDPTimeout          *string `json:"udpTimeout,omitempty"`
	GenericTimeout      *string `json:"genericTimeout,omitempty"`
	ICMPTimeout         *string `json:"icmpTimeout,omitempty"`
}

// NewFelixConfiguration returns an empty FelixConfiguration with its TypeMeta set.
func NewFelixConfiguration() *FelixConfiguration {
	return &FelixConfiguration{TypeMeta: TypeMeta{Kind: KindFelixConfiguration, APIVersion: APIVersion}}
}

var (
	felixKVList      = lazyRegexp(`^([a-zA-Z0-9-_]+=([^=,]*),)*([a-zA-Z0-9-_]+=([^=,]*))?$`)
	felixLogPrefix   = lazyRegexp(`^([a-zA-Z0-9%: /_-])*$`)
	felixRateLimit   = lazyRegexp(`^[1-9]\d{0,3}/(?:second|minute|hour|day)$`)
	felixIfaceFilter = lazyRegexp(`^[a-zA-Z0-9:._+-]{1,15}$`)
	felixCTTimeout   = lazyRegexp(`^(([0-9]*(\.[0-9]*)?(ms|s|h|m|us)+)+|Auto)$`)
)

// Validate checks the name, every field's rule (enums, ranges, addresses,
// regular expressions, durations) and the rules that span fields.
func (f *FelixConfiguration) Validate() error {
	var es errs
	s := &f.Spec
	if s.NodeSelector != nil {
		if f.Name == GlobalConfigName || strings.HasPrefix(f.Name, NodeConfigPrefix) {
			es.add(fieldErr("spec.nodeSelector", *s.NodeSelector, "cannot be set on the %q or a per-node (%q) FelixConfiguration", GlobalConfigName, NodeConfigPrefix+"<node>"))
		}
	} else {
		es.add(validateConfigName(f.Name))
	}
	es.add(validateTagged("spec", reflect.ValueOf(s).Elem()))
	if s.RouteTableRange != nil && s.RouteTableRanges != nil {
		es.add(fieldErr("spec.routeTableRanges", nil, "cannot be set together with spec.routeTableRange"))
	}
	if r := s.RouteTableRange; r != nil && (r.Min < 1 || r.Max < r.Min || r.Max > 250) {
		es.add(fieldErr("spec.routeTableRange", fmt.Sprintf("%d-%d", r.Min, r.Max), "must be a range of route table indices within 1-250"))
	}
	if s.RouteTableRanges != nil {
		for i, r := range *s.RouteTableRanges {
			if r.Min < 1 || r.Max < r.Min || int64(r.Max) > math.MaxUint32 {
				es.add(fieldErr(fmt.Sprintf("spec.routeTableRanges[%d]", i), fmt.Sprintf("%d-%d", r.Min, r.Max), "must have 1 <= min <= max <= 4294967295"))
			}
		}
	}
	for _, fp := range []struct {
		name  string
		ports *[]ProtoPort
	}{{"failsafeInboundHostPorts", s.FailsafeInboundHostPorts}, {"failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts}} {
		if fp.ports == nil {
			continue
		}
		for i, p := range *fp.ports {
			fld := fmt.Sprintf("spec.%s[%d]", fp.name, i)
			if p.Protocol != "" {
				es.add(oneOfFold(fld+".protocol", p.Protocol, "TCP", "UDP", "SCTP"))
			}
			if p.Net != "" {
				if _, err := ParseAddrOrCIDR(p.Net); err != nil {
					es.add(fieldErr(fld+".net", p.Net, "not an IP address or CIDR"))
				}
			}
		}
	}
	for i, h := range s.HealthTimeoutOverrides {
		fld := fmt.Sprintf("spec.healthTimeoutOverrides[%d]", i)
		if h.Name == "" {
			es.add(fieldErr(fld+".name", nil, "a name is required"))
		}
		if h.Timeout.Duration < 0 {
			es.add(fieldErr(fld+".timeout", h.Timeout.Duration.String(), "must not be negative"))
		}
	}
	if t := s.BPFConntrackTimeouts; t != nil {
		v := reflect.ValueOf(t).Elem()
		for i := 0; i < v.NumField(); i++ {
			p := v.Field(i).Interface().(*string)
			if p != nil && !felixCTTimeout().MatchString(*p) {
				es.add(fieldErr("spec.bpfConntrackTimeouts."+jsonName(v.Type().Field(i)), *p, "must be a duration such as 30s, or Auto"))
			}
		}
	}
	if s.IstioDSCPMark != nil {
		if err := s.IstioDSCPMark.Validate(); err != nil {
			es.add(fieldErr("spec.istioDSCPMark", s.IstioDSCPMark.String(), "%v", err))
		}
	}
	for _, pp := range []struct {
		name string
		p    *Port
	}{{"natPortRange", s.NATPortRange}, {"bpfPSNATPorts", s.BPFPSNATPorts}} {
		if pp.p != nil && pp.p.PortName != "" {
			es.add(fieldErr("spec."+pp.name, pp.p.PortName, "must be a port or a range min:max, not a name"))
		}
	}
	if s.KubeNodePortRanges != nil {
		for i, p := range *s.KubeNodePortRanges {
			if p.PortName != "" {
				es.add(fieldErr(fmt.Sprintf("spec.kubeNodePortRanges[%d]", i), p.PortName, "must be a port or a range min:max, not a name"))
			}
		}
	}
	return es.err()
}

// jsonName returns the JSON name of a struct field ("" for none).
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func oneOfFold(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return nil
		}
	}
	return fieldErr(field, v, "must be one of %s", strings.Join(allowed, ", "))
}

// validateTagged checks every field of struct v against its fv tag, once for
// all fields instead of per-field code. Rules:
//
//	enum=A|B       the value is one of these (case-insensitive, as Felix reads them)
//	range=lo:hi    an integer within bounds (either may be empty)
//	maxItems=n     a list of at most n entries
//	regexp         a Go regular expression
//	cidrs          every entry is an IP or a CIDR
//	ipv4, ipv6     an address of that family
//	iface          a Linux interface name
//	ifaceFilter    an interface name with the '+' wildcard (one or a list)
//	kvlist         "key=value,key=value"
//	selector       a selector expression
//	logPrefix, rateLimit   the LOG prefix and rate limit formats
//
// Every Duration must be non-negative. Unset (nil or empty) fields pass.
func validateTagged(prefix string, v reflect.Value) error {
	var es errs
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		fv := v.Field(i)
		field := prefix + "." + jsonName(sf)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		if d, ok := fv.Interface().(Duration); ok {
			es.add(validateDuration(field, &d))
			continue
		}
		rule := sf.Tag.Get("fv")
		if rule == "" {
			continue
		}
		es.add(checkRule(field, rule, fv))
	}
	return es.err()
}

func checkRule(field, rule string, v reflect.Value) error {
	name, arg, _ := strings.Cut(rule, "=")
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if s == "" {
			return nil
		}
		return checkStringRule(field, name, arg, s)
	case reflect.Slice:
		if name == "maxItems" {
			n, _ := strconv.Atoi(arg)
			if v.Len() > n {
				return fieldErr(field, v.Len(), "at most %d entries are allowed", n)
			}
			return nil
		}
		var es errs
		for i := 0; i < v.Len(); i++ {
			if s, ok := v.Index(i).Interface().(string); ok {
				es.add(checkStringRule(fmt.Sprintf("%s[%d]", field, i), name, arg, s))
			}
		}
		return es.err()
	case reflect.Int, reflect.Int32, reflect.Int64:
		if name != "range" {
			return nil
		}
		lo, hi, _ := strings.Cut(arg, ":")
		n := v.Int()
		if lo != "" {
			if l, _ := strconv.ParseInt(lo, 10, 64); n < l {
				return fieldErr(field, n, "must be at least %d", l)
			}
		}
		if hi != "" {
			if h, _ := strconv.ParseInt(hi, 10, 64); n > h {
				return fieldErr(field, n, "must be at most %d", h)
			}
		}
	}
	return nil
}

func checkStringRule(field, name, arg, s string) error {
	switch name {
	case "enum":
		return oneOfFold(field, s, strings.Split(arg, "|")...)
	case "regexp":
		if _, err := regexp.Compile(s); err != nil {
			return fieldErr(field, s, "not a valid regular expression: %v", err)
		}
	case "cidrs":
		if _, err := ParseAddrOrCIDR(s); err != nil {
			return fieldErr(field, s, "not an IP address or CIDR")
		}
	case "ipv4":
		return validateIP(field, s, 32)
	case "ipv6":
		return validateIP(field, s, 128)
	case "iface":
		return ValidateInterfaceName(field, s)
	case "ifaceFilter":
		if !felixIfaceFilter().MatchString(s) {
			return fieldErr(field, s, "not an interface name or name+ pattern")
		}
	case "kvlist":
		if !felixKVList().MatchString(s) {
			return fieldErr(field, s, "must be a comma-separated list of key=value")
		}
	case "selector":
		return ValidateSelector(field, s)
	case "logPrefix":
		if !felixLogPrefix().MatchString(s) {
			return fieldErr(field, s, "may contain only letters, digits and %%: /_-")
		}
	case "rateLimit":
		if !felixRateLimit().MatchString(s) {
			return fieldErr(field, s, "must be N/second, N/minute, N/hour or N/day with N from 1 to 9999")
		}
	}
	return nil
}
