package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fieldsOf lists the JSON paths of every FieldError in a (joined) error.
func fieldsOf(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		var fe *FieldError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &fe) {
			out = append(out, fe.Field)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

type validationCase struct {
	name  string
	kind  string
	obj   string // JSON of the whole object, kind and apiVersion optional
	field string // the field path the error must name; "" means valid
}

func runValidationCases(t *testing.T, cases []validationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, ok := LookupKind(tc.kind)
			if !ok {
				t.Fatalf("unknown kind %s", tc.kind)
			}
			r := k.New()
			dec := json.NewDecoder(bytes.NewReader([]byte(tc.obj)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(r); err != nil {
				t.Fatalf("decode: %v", err)
			}
			Default(r)
			err := Validate(r)
			fields := fieldsOf(err)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if !slices.Contains(fields, tc.field) {
				t.Fatalf("want an error on %s, got %v (fields %v)", tc.field, err, fields)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestBGPConfigurationValidation(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"minimal default", "bgpconfig", `{"metadata":{"name":"default"},"spec":{}}`, ""},
		{"per node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"listenPort":1179,"logSeverityScreen":"debug"}}`, ""},
		{"other name", "bgpconfig", `{"metadata":{"name":"custom"},"spec":{}}`, "metadata.name"},
		{"bad node part", "bgpconfig", `{"metadata":{"name":"node."},"spec":{}}`, "metadata.name"},
		{"severity", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"logSeverityScreen":"Loud"}}`, "spec.logSeverityScreen"},
		{"mesh on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"nodeToNodeMeshEnabled":false}}`, "spec.nodeToNodeMeshEnabled"},
		{"asNumber on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"asNumber":65000}}`, "spec.asNumber"},
		{"cluster IPs on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"serviceClusterIPs":[{"cidr":"10.96.0.0/12"}]}}`, "spec.serviceClusterIPs"},
		{"external IPs on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"serviceExternalIPs":[{"cidr":"10.96.0.0/12"}]}}`, "spec.serviceExternalIPs"},
		{"LB IPs on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"serviceLoadBalancerIPs":[{"cidr":"10.96.0.0/12"}]}}`, "spec.serviceLoadBalancerIPs"},
		{"mesh password on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"nodeMeshPassword":{"secretKeyRef":{"name":"s","key":"k"}}}}`, "spec.nodeMeshPassword"},
		{"restart time on node", "bgpconfig", `{"metadata":{"name":"node.n1"},"spec":{"nodeMeshMaxRestartTime":"1m"}}`, "spec.nodeMeshMaxRestartTime"},
		{"mesh password without mesh", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"nodeToNodeMeshEnabled":false,"nodeMeshPassword":{"secretKeyRef":{"name":"s","key":"k"}}}}`, "spec.nodeMeshPassword"},
		{"password without key", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"nodeMeshPassword":{"secretKeyRef":{"name":"s"}}}}`, "spec.nodeMeshPassword.secretKeyRef.key"},
		{"bad cluster CIDR", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"serviceClusterIPs":[{"cidr":"10.96.0.0/33"}]}}`, "spec.serviceClusterIPs[0].cidr"},
		{"community value", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"communities":[{"name":"c","value":"70000:1"}]}}`, "spec.communities[0].value"},
		{"community name", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"communities":[{"value":"1:1"}]}}`, "spec.communities[0].name"},
		{"advertised unknown community", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"prefixAdvertisements":[{"cidr":"10.0.0.0/8","communities":["nope"]}]}}`, "spec.prefixAdvertisements[0].communities[0]"},
		{"advertisement without communities", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"prefixAdvertisements":[{"cidr":"10.0.0.0/8"}]}}`, "spec.prefixAdvertisements[0].communities"},
		{"bind mode", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"bindMode":"All"}}`, "spec.bindMode"},
		{"ignored interface", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"ignoredInterfaces":["bad name"]}}`, "spec.ignoredInterfaces[0]"},
		{"every interface ignored", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"ignoredInterfaces":["eth1","*"]}}`, "spec.ignoredInterfaces[1]"},
		{"ignored patterns", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"ignoredInterfaces":["docker*","eth1.100"],"localWorkloadPeeringIPV4":"169.254.0.179"}}`, ""},
		{"peering IPv4", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"localWorkloadPeeringIPV4":"fe80::1"}}`, "spec.localWorkloadPeeringIPV4"},
		{"cluster routes", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"programClusterRoutes":"Sometimes"}}`, "spec.programClusterRoutes"},
		{"route priority", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"ipv4NormalRoutePriority":0}}`, "spec.ipv4NormalRoutePriority"},
		{"negative restart time", "bgpconfig", `{"metadata":{"name":"default"},"spec":{"nodeMeshMaxRestartTime":"-1s"}}`, "spec.nodeMeshMaxRestartTime"},
	})
}

func TestBGPPeerValidation(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"peer IP", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","asNumber":65000}}`, ""},
		{"peer IPv4 port", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1:1179","asNumber":65000}}`, ""},
		{"peer IPv6 port", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"[fd00::1]:1179","asNumber":"1.10"}}`, ""},
		{"peer IPv6", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"fd00::1","asNumber":65000}}`, ""},
		{"peer selector", "bgppeer", `{"metadata":{"name":"p"},"spec":{"nodeSelector":"all()","peerSelector":"has(rr)"}}`, ""},
		{"bad peer IP", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.300"}}`, "spec.peerIP"},
		{"IPv6 port without brackets", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"fd00::1:1179:x"}}`, "spec.peerIP"},
		{"port zero", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1:0"}}`, "spec.peerIP"},
		{"no peer", "bgppeer", `{"metadata":{"name":"p"},"spec":{"asNumber":65000}}`, "spec.peerIP"},
		{"IP and selector", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","peerSelector":"all()"}}`, "spec.peerSelector"},
		{"node and node selector", "bgppeer", `{"metadata":{"name":"p"},"spec":{"node":"n1","nodeSelector":"all()","peerIP":"10.0.0.1"}}`, "spec.nodeSelector"},
		{"bad node selector", "bgppeer", `{"metadata":{"name":"p"},"spec":{"nodeSelector":"a ==","peerIP":"10.0.0.1"}}`, "spec.nodeSelector"},
		{"bad peer selector", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerSelector":"has("}}`, "spec.peerSelector"},
		{"selector with AS", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerSelector":"all()","asNumber":65000}}`, "spec.asNumber"},
		{"workload without AS", "bgppeer", `{"metadata":{"name":"p"},"spec":{"localWorkloadSelector":"app == 'r'"}}`, "spec.asNumber"},
		{"workload and IP", "bgppeer", `{"metadata":{"name":"p"},"spec":{"localWorkloadSelector":"all()","peerIP":"10.0.0.1","asNumber":1}}`, "spec.localWorkloadSelector"},
		{"bad node name", "bgppeer", `{"metadata":{"name":"p"},"spec":{"node":"Node_1","peerIP":"10.0.0.1"}}`, "spec.node"},
		{"source address", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","sourceAddress":"Any"}}`, "spec.sourceAddress"},
		{"next hop mode", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","nextHopMode":"Other"}}`, "spec.nextHopMode"},
		{"reverse peering", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerSelector":"all()","reversePeering":"Never"}}`, "spec.reversePeering"},
		{"password name", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","password":{"secretKeyRef":{"key":"k"}}}}`, "spec.password.secretKeyRef.name"},
		{"password ref", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","password":{}}}`, "spec.password.secretKeyRef"},
		{"negative keepalive", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","keepaliveTime":"-5s"}}`, "spec.keepaliveTime"},
		{"negative local AS count", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","numAllowedLocalASNumbers":-1}}`, "spec.numAllowedLocalASNumbers"},
		{"reachableBy family", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","reachableBy":"fd00::1"}}`, "spec.reachableBy"},
		{"reachableBy needs IP", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerSelector":"all()","reachableBy":"10.0.0.254"}}`, "spec.reachableBy"},
		{"filter name", "bgppeer", `{"metadata":{"name":"p"},"spec":{"peerIP":"10.0.0.1","filters":["Bad_Name"]}}`, "spec.filters[0]"},
	})
}

func TestFelixConfigurationValidation(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"empty default", "felixconfig", `{"metadata":{"name":"default"},"spec":{}}`, ""},
		{"per node", "felixconfig", `{"metadata":{"name":"node.n1"},"spec":{"defaultEndpointToHostAction":"return"}}`, ""},
		{"selector scoped", "felixconfig", `{"metadata":{"name":"gpu-nodes"},"spec":{"nodeSelector":"gpu == 'true'"}}`, ""},
		{"other name", "felixconfig", `{"metadata":{"name":"gpu-nodes"},"spec":{}}`, "metadata.name"},
		{"selector on default", "felixconfig", `{"metadata":{"name":"default"},"spec":{"nodeSelector":"all()"}}`, "spec.nodeSelector"},
		{"bad selector", "felixconfig", `{"metadata":{"name":"x"},"spec":{"nodeSelector":"a =="}}`, "spec.nodeSelector"},
		{"enum", "felixconfig", `{"metadata":{"name":"default"},"spec":{"iptablesBackend":"Old"}}`, "spec.iptablesBackend"},
		{"enum string", "felixconfig", `{"metadata":{"name":"default"},"spec":{"chainInsertMode":"Prepend"}}`, "spec.chainInsertMode"},
		{"bpf log level", "felixconfig", `{"metadata":{"name":"default"},"spec":{"bpfLogLevel":"Trace"}}`, "spec.bpfLogLevel"},
		{"log severity", "felixconfig", `{"metadata":{"name":"default"},"spec":{"logSeverityScreen":"Verbose"}}`, "spec.logSeverityScreen"},
		{"negative duration", "felixconfig", `{"metadata":{"name":"default"},"spec":{"routeRefreshInterval":"-1s"}}`, "spec.routeRefreshInterval"},
		{"port range", "felixconfig", `{"metadata":{"name":"default"},"spec":{"healthPort":70000}}`, "spec.healthPort"},
		{"mark mask", "felixconfig", `{"metadata":{"name":"default"},"spec":{"iptablesMarkMask":4294967296}}`, "spec.iptablesMarkMask"},
		{"vni", "felixconfig", `{"metadata":{"name":"default"},"spec":{"vxlanVNI":16777216}}`, "spec.vxlanVNI"},
		{"regexp", "felixconfig", `{"metadata":{"name":"default"},"spec":{"mtuIfacePattern":"(eth"}}`, "spec.mtuIfacePattern"},
		{"nat address", "felixconfig", `{"metadata":{"name":"default"},"spec":{"natOutgoingAddress":"fd00::1"}}`, "spec.natOutgoingAddress"},
		{"device route source v6", "felixconfig", `{"metadata":{"name":"default"},"spec":{"deviceRouteSourceAddressIPv6":"10.0.0.1"}}`, "spec.deviceRouteSourceAddressIPv6"},
		{"external nodes", "felixconfig", `{"metadata":{"name":"default"},"spec":{"externalNodesList":["10.0.0.0/33"]}}`, "spec.externalNodesList[0]"},
		{"feature gates", "felixconfig", `{"metadata":{"name":"default"},"spec":{"featureGates":"a=b=c"}}`, "spec.featureGates"},
		{"log prefix", "felixconfig", `{"metadata":{"name":"default"},"spec":{"logPrefix":"bad!prefix"}}`, "spec.logPrefix"},
		{"rate limit", "felixconfig", `{"metadata":{"name":"default"},"spec":{"logActionRateLimit":"10/week"}}`, "spec.logActionRateLimit"},
		{"wireguard name", "felixconfig", `{"metadata":{"name":"default"},"spec":{"wireguardInterfaceName":"a-very-long-interface-name"}}`, "spec.wireguardInterfaceName"},
		{"node port ranges", "felixconfig", `{"metadata":{"name":"default"},"spec":{"kubeNodePortRanges":[1,2,3,4,5,6,7,8]}}`, "spec.kubeNodePortRanges"},
		{"named node port", "felixconfig", `{"metadata":{"name":"default"},"spec":{"kubeNodePortRanges":["http"]}}`, "spec.kubeNodePortRanges[0]"},
		{"route table range", "felixconfig", `{"metadata":{"name":"default"},"spec":{"routeTableRange":{"min":0,"max":250}}}`, "spec.routeTableRange"},
		{"route table range max", "felixconfig", `{"metadata":{"name":"default"},"spec":{"routeTableRange":{"min":1,"max":251}}}`, "spec.routeTableRange"},
		{"route table ranges", "felixconfig", `{"metadata":{"name":"default"},"spec":{"routeTableRanges":[{"min":10,"max":5}]}}`, "spec.routeTableRanges[0]"},
		{"both ranges", "felixconfig", `{"metadata":{"name":"default"},"spec":{"routeTableRange":{"min":1,"max":250},"routeTableRanges":[{"min":1,"max":250}]}}`, "spec.routeTableRanges"},
		{"failsafe protocol", "felixconfig", `{"metadata":{"name":"default"},"spec":{"failsafeInboundHostPorts":[{"protocol":"icmp","port":1}]}}`, "spec.failsafeInboundHostPorts[0].protocol"},
		{"failsafe net", "felixconfig", `{"metadata":{"name":"default"},"spec":{"failsafeOutboundHostPorts":[{"protocol":"tcp","port":22,"net":"nowhere"}]}}`, "spec.failsafeOutboundHostPorts[0].net"},
		{"health override", "felixconfig", `{"metadata":{"name":"default"},"spec":{"healthTimeoutOverrides":[{"name":"","timeout":"1s"}]}}`, "spec.healthTimeoutOverrides[0].name"},
		{"conntrack timeout", "felixconfig", `{"metadata":{"name":"default"},"spec":{"bpfConntrackTimeouts":{"tcpSynSent":"soon"}}}`, "spec.bpfConntrackTimeouts.tcpSynSent"},
		{"dscp", "felixconfig", `{"metadata":{"name":"default"},"spec":{"istioDSCPMark":"XX1"}}`, "spec.istioDSCPMark"},
		{"dscp number", "felixconfig", `{"metadata":{"name":"default"},"spec":{"istioDSCPMark":64}}`, "spec.istioDSCPMark"},
		{"psnat name", "felixconfig", `{"metadata":{"name":"default"},"spec":{"bpfPSNATPorts":"http"}}`, "spec.bpfPSNATPorts"},
		{"gc threshold", "felixconfig", `{"metadata":{"name":"default"},"spec":{"goGCThreshold":-2}}`, "spec.goGCThreshold"},
		{"maglev", "felixconfig", `{"metadata":{"name":"default"},"spec":{"bpfMaglevMaxServices":0}}`, "spec.bpfMaglevMaxServices"},
	})
}

func TestPolicyValidation(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"plain default-tier name", "np", `{"metadata":{"name":"p"},"spec":{}}`, ""},
		{"legacy default prefix", "gnp", `{"metadata":{"name":"default.p"},"spec":{}}`, ""},
		{"tiered name", "gnp", `{"metadata":{"name":"sec.p"},"spec":{"tier":"sec"}}`, ""},
		{"generated name", "np", `{"metadata":{"name":"knp.default.p"},"spec":{}}`, ""},
		{"missing tier prefix", "gnp", `{"metadata":{"name":"p"},"spec":{"tier":"sec"}}`, "metadata.name"},
		{"wrong tier prefix", "np", `{"metadata":{"name":"other.p"},"spec":{"tier":"sec"}}`, "metadata.name"},
		{"dot in default tier", "np", `{"metadata":{"name":"a.b"},"spec":{}}`, "metadata.name"},
		{"bad tier", "np", `{"metadata":{"name":"p"},"spec":{"tier":"Sec.x"}}`, "spec.tier"},
		{"bad selector", "np", `{"metadata":{"name":"p"},"spec":{"selector":"a =="}}`, "spec.selector"},
		{"global in selector", "np", `{"metadata":{"name":"p"},"spec":{"selector":"global()"}}`, "spec.selector"},
		{"sa selector", "np", `{"metadata":{"name":"p"},"spec":{"serviceAccountSelector":"has("}}`, "spec.serviceAccountSelector"},
		{"gnp namespace selector", "gnp", `{"metadata":{"name":"p"},"spec":{"namespaceSelector":"has("}}`, "spec.namespaceSelector"},
		{"type", "np", `{"metadata":{"name":"p"},"spec":{"types":["Forward"]}}`, "spec.types[0]"},
		{"type twice", "np", `{"metadata":{"name":"p"},"spec":{"types":["Ingress","Ingress"]}}`, "spec.types[1]"},
		{"egress rules without Egress type", "np", `{"metadata":{"name":"p"},"spec":{"types":["Ingress"],"egress":[{"action":"Allow"}]}}`, "spec.types"},
		{"hint", "np", `{"metadata":{"name":"p"},"spec":{"performanceHints":["Fast"]}}`, "spec.performanceHints[0]"},
		{"doNotTrack needs applyOnForward", "gnp", `{"metadata":{"name":"p"},"spec":{"doNotTrack":true}}`, "spec.applyOnForward"},
		{"preDNAT needs applyOnForward", "gnp", `{"metadata":{"name":"p"},"spec":{"preDNAT":true}}`, "spec.applyOnForward"},
		{"preDNAT and doNotTrack", "gnp", `{"metadata":{"name":"p"},"spec":{"preDNAT":true,"doNotTrack":true,"applyOnForward":true}}`, "spec.preDNAT"},
		{"preDNAT egress", "gnp", `{"metadata":{"name":"p"},"spec":{"preDNAT":true,"applyOnForward":true,"egress":[{"action":"Allow"}]}}`, "spec.egress"},
		{"preDNAT egress type", "gnp", `{"metadata":{"name":"p"},"spec":{"preDNAT":true,"applyOnForward":true,"types":["Egress"]}}`, "spec.types"},
		{"rule action", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Accept"}]}}`, "spec.ingress[0].action"},
		{"catch-all notNets", "np", `{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Deny","destination":{"notNets":["0.0.0.0/0"]}}]}}`, "spec.egress[0].destination.notNets[0]"},
		{"v6 catch-all notNets", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Deny","source":{"notNets":["::/0"]}}]}}`, "spec.ingress[0].source.notNets[0]"},
		{"mixed families", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","source":{"nets":["10.0.0.0/8"]},"destination":{"nets":["fd00::/8"]}}]}}`, "spec.ingress[0]"},
		{"ipVersion vs nets", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","ipVersion":6,"source":{"nets":["10.0.0.0/8"]}}]}}`, "spec.ingress[0].ipVersion"},
		{"ICMP with v6", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","ipVersion":6,"protocol":"ICMP"}]}}`, "spec.ingress[0].ipVersion"},
		{"ports need protocol", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","destination":{"ports":[80]}}]}}`, "spec.ingress[0].protocol"},
		{"icmp needs protocol", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","protocol":"TCP","icmp":{"type":8}}]}}`, "spec.ingress[0].icmp"},
		{"global in rule selector", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"global()"}}]}}`, "spec.ingress[0].source.selector"},
		{"global in namespaceSelector", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","source":{"namespaceSelector":"global()"}}]}}`, ""},
		{"global in a string is fine", "np", `{"metadata":{"name":"p"},"spec":{"selector":"a == 'global()'"}}`, ""},
		{"services with selector", "np", `{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Allow","destination":{"services":{"name":"s"},"selector":"all()"}}]}}`, "spec.egress[0].destination.services"},
		{"services need a name", "np", `{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Allow","destination":{"services":{"namespace":"ns"}}}]}}`, "spec.egress[0].destination.services.name"},
		{"services on the local side", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","destination":{"services":{"name":"s"}}}]}}`, "spec.ingress[0].destination.services"},
		{"services with egress ports", "np", `{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Allow","protocol":"TCP","destination":{"services":{"name":"s"},"ports":[80]}}]}}`, "spec.egress[0].destination.ports"},
		{"services ingress with ports", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","protocol":"TCP","source":{"services":{"name":"s"}},"destination":{"ports":[80]}}]}}`, "spec.ingress[0].source.services"},
		{"http is refused", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","http":{"methods":["GET"]}}]}}`, "spec.ingress[0].http"},
		{"http on deny", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Deny","http":{"methods":["GET"]}}]}}`, "spec.ingress[0].http"},
		{"http path", "np", `{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","http":{"paths":[{"exact":"/a","prefix":"/b"}]}}]}}`, "spec.ingress[0].http.paths[0]"},
	})
}

// TestPolicyDefaults pins calico.md §1.2: the types default and the tier label.
func TestPolicyDefaults(t *testing.T) {
	allow := []Rule{{Action: Allow}}
	for _, tc := range []struct {
		ingress, egress []Rule
		want            []PolicyType
	}{
		{nil, nil, []PolicyType{PolicyTypeIngress}},
		{allow, nil, []PolicyType{PolicyTypeIngress}},
		{nil, allow, []PolicyType{PolicyTypeEgress}},
		{allow, allow, []PolicyType{PolicyTypeIngress, PolicyTypeEgress}},
	} {
		p := NewGlobalNetworkPolicy()
		p.Spec.Ingress, p.Spec.Egress = tc.ingress, tc.egress
		p.Default()
		if !slices.Equal(p.Spec.Types, tc.want) || p.Spec.Tier != "default" || p.Labels[LabelTier] != "default" {
			t.Errorf("ingress %d egress %d: types %v tier %q labels %v", len(tc.ingress), len(tc.egress), p.Spec.Types, p.Spec.Tier, p.Labels)
		}
	}
	np := NewNetworkPolicy()
	np.Spec.Tier = "sec"
	np.Spec.Types = []PolicyType{PolicyTypeEgress}
	np.Default()
	if np.Namespace != "default" || np.Labels[LabelTier] != "sec" || !slices.Equal(np.Spec.Types, []PolicyType{PolicyTypeEgress}) {
		t.Errorf("explicit types/tier not kept: %+v", np)
	}
}

func TestParsePeerIP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
		ok   bool
	}{
		{"10.0.0.1", "10.0.0.1", 0, true},
		{"10.0.0.1:179", "10.0.0.1", 179, true},
		{"fd00::1", "fd00::1", 0, true},
		{"[fd00::1]:1179", "fd00::1", 1179, true},
		{"[fd00::1]", "", 0, false},
		{"10.0.0.1:70000", "", 0, false},
		{"host:179", "", 0, false},
		{"fe80::1%eth0", "", 0, false},
	} {
		a, p, err := ParsePeerIP(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (a.String() != tc.addr || p != tc.port)) {
			t.Errorf("ParsePeerIP(%q) = %v, %d, %v", tc.in, a, p, err)
		}
	}
}

func TestKindRegistry(t *testing.T) {
	for _, tc := range []struct{ name, kind, plural string }{
		{"bgpconfig", KindBGPConfiguration, "bgpconfigurations"},
		{"BGPConfigs", KindBGPConfiguration, "bgpconfigurations"},
		{"bps", KindBGPPeer, "bgppeers"},
		{"bgpp", KindBGPPeer, "bgppeers"},
		{"felixconfigs", KindFelixConfiguration, "felixconfigurations"},
		{"pol", KindNetworkPolicy, "networkpolicies"},
		{"NetworkPolicy", KindNetworkPolicy, "networkpolicies"},
		{"globalpolicies", KindGlobalNetworkPolicy, "globalnetworkpolicies"},
		{"gnp", KindGlobalNetworkPolicy, "globalnetworkpolicies"},
	} {
		k, ok := LookupKind(tc.name)
		if !ok || k.Kind != tc.kind || k.Plural != tc.plural {
			t.Errorf("LookupKind(%q) = %+v, %v", tc.name, k, ok)
		}
	}
	if k, _ := LookupKind("np"); !k.Namespaced || k.Key("ns", "p") != ResourcePrefix+"networkpolicies/ns/p" {
		t.Errorf("networkpolicies key: %s", k.Key("ns", "p"))
	}
	ks := Kinds()
	if !slices.IsSortedFunc(ks, func(a, b KindInfo) int { return strings.Compare(a.Kind, b.Kind) }) {
		t.Error("Kinds() not sorted by kind")
	}
	aliases := map[string]string{}
	for _, k := range ks {
		for _, n := range append([]string{strings.ToLower(k.Kind), k.Plural}, k.Aliases...) {
			if other, dup := aliases[n]; dup && other != k.Kind {
				t.Errorf("name %q names both %s and %s", n, other, k.Kind)
			}
			aliases[n] = k.Kind
		}
	}
}

// TestUnenforceableRulesRefused: a rule with http or services is refused
// with a reason that says why, never accepted and silently ignored.
func TestUnenforceableRulesRefused(t *testing.T) {
	for _, js := range []string{
		`{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Allow","http":{"methods":["GET"]}}]}}`,
		`{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Allow","destination":{"services":{"name":"s","namespace":"ns"}}}]}}`,
	} {
		for _, kind := range []string{KindNetworkPolicy, KindGlobalNetworkPolicy, KindProfile} {
			k, _ := LookupKind(kind)
			r := k.New()
			if err := json.Unmarshal([]byte(js), r); err != nil {
				t.Fatal(err)
			}
			Default(r)
			err := Validate(r)
			if err == nil || !strings.Contains(err.Error(), "this dataplane cannot enforce") {
				t.Errorf("%s %s: %v", kind, js, err)
			}
		}
	}
}
