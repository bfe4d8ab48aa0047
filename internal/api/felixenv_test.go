package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func mapGetter(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestFelixOverrides sets fields of every kind of type from FELIX_* names:
// the JSON name, Felix's own parameter name and the Go field name.
func TestFelixOverrides(t *testing.T) {
	var s FelixConfigurationSpec
	err := s.ApplyOverrides(mapGetter(map[string]string{
		"FELIX_VXLANENABLED":                    "true",
		"FELIX_IPINIPMTU":                       "1400",
		"FELIX_IPINIPENABLED":                   "false",
		"FELIX_ROUTEREFRESHINTERVAL":            "30s",
		"FELIX_REPORTINGINTERVALSECS":           "0",
		"FELIX_IPTABLESLOCKPROBEINTERVALMILLIS": "250",
		"FELIX_IPV6SUPPORT":                     "no",
		"FELIX_LOGSEVERITYSCREEN":               "Debug",
		"FELIX_HEALTHHOST":                      "0.0.0.0",
		"FELIX_IPTABLESMARKMASK":                "0xffff0000",
		"FELIX_EXTERNALNODESCIDRLIST":           "10.0.0.0/8, 192.0.2.1",
		"FELIX_KUBENODEPORTRANGES":              "30000:32767,40000",
		"FELIX_FAILSAFEINBOUNDHOSTPORTS":        "tcp:22,udp:68,tcp:10.0.0.0/8:179,tcp:[fd00::/8]:443",
		"FELIX_FAILSAFEOUTBOUNDHOSTPORTS":       "none",
		"FELIX_ROUTETABLERANGE":                 "1-250",
		"FELIX_ROUTETABLERANGES":                "1-100,200-300",
		"FELIX_BPFLOGFILTERS":                   "all=tcp port 80,eth0=udp",
		"FELIX_HEALTHTIMEOUTOVERRIDES":          "InternalDataplaneMainLoop=90s,CalculationGraph=30",
		"FELIX_BPFCONNTRACKTIMEOUTS":            "TCPEstablished=1h,udpTimeout=Auto",
		"FELIX_NATPORTRANGE":                    "32768:65535",
		"FELIX_ISTIODSCPMARK":                   "EF",
		"FELIX_WIREGUARDPERSISTENTKEEPALIVE":    "25s",
		"FELIX_BPFLOGLEVEL":                     "Debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(&s)
	for _, want := range []string{
		`"vxlanEnabled":true`, `"ipipMTU":1400`, `"ipipEnabled":false`, `"routeRefreshInterval":"30s"`,
		`"reportingInterval":"0s"`, `"iptablesLockProbeInterval":"250ms"`, `"ipv6Support":false`,
		`"logSeverityScreen":"Debug"`, `"healthHost":"0.0.0.0"`, `"iptablesMarkMask":4294901760`,
		`"externalNodesList":["10.0.0.0/8","192.0.2.1"]`, `"kubeNodePortRanges":["30000:32767",40000]`,
		`"failsafeInboundHostPorts":[{"protocol":"tcp","port":22},{"protocol":"udp","port":68},{"protocol":"tcp","port":179,"net":"10.0.0.0/8"},{"protocol":"tcp","port":443,"net":"fd00::/8"}]`,
		`"failsafeOutboundHostPorts":[]`, `"routeTableRange":{"min":1,"max":250}`,
		`"routeTableRanges":[{"min":1,"max":100},{"min":200,"max":300}]`,
		`"bpfLogFilters":{"all":"tcp port 80","eth0":"udp"}`,
		`"healthTimeoutOverrides":[{"name":"InternalDataplaneMainLoop","timeout":"1m30s"},{"name":"CalculationGraph","timeout":"30s"}]`,
		`"bpfConntrackTimeouts":{"tcpEstablished":"1h","udpTimeout":"Auto"}`,
		`"natPortRange":"32768:65535"`, `"istioDSCPMark":"EF"`, `"wireguardKeepAlive":"25s"`, `"bpfLogLevel":"Debug"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s in\n%s", want, b)
		}
	}
}

func TestFelixOverrideErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FELIX_VXLANENABLED": "maybe"}, "FELIX_VXLANENABLED"},
		{map[string]string{"FELIX_IPIPMTU": "big"}, "FELIX_IPIPMTU"},
		{map[string]string{"FELIX_ROUTEREFRESHINTERVAL": "soon"}, "FELIX_ROUTEREFRESHINTERVAL"},
		{map[string]string{"FELIX_ROUTETABLERANGE": "1..250"}, "FELIX_ROUTETABLERANGE"},
		{map[string]string{"FELIX_IPIPMTU": "1400", "FELIX_IPINIPMTU": "1300"}, "set the same field differently"},
	} {
		var s FelixConfigurationSpec
		err := s.ApplyOverrides(mapGetter(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.env, err, tc.want)
		}
		if s.IPIPMTU != nil || s.VXLANEnabled != nil {
			t.Errorf("%v: spec changed despite the error", tc.env)
		}
	}
	// Same value under two names is fine.
	var s FelixConfigurationSpec
	if err := s.ApplyOverrides(mapGetter(map[string]string{"FELIX_IPIPMTU": "1400", "FELIX_IPINIPMTU": "1400"})); err != nil || *s.IPIPMTU != 1400 {
		t.Errorf("aliases with one value: %v", err)
	}
}

func TestFelixEnviron(t *testing.T) {
	var s FelixConfigurationSpec
	err := s.ApplyEnviron([]string{"PATH=/bin", "FELIX_VXLANENABLED=true", "FELIX_NOSUCHTHING=1", "FELIX_ALSOUNKNOWN=2"})
	if err == nil || !strings.Contains(err.Error(), "FELIX_ALSOUNKNOWN, FELIX_NOSUCHTHING") {
		t.Fatalf("unknown keys: got %v", err)
	}
	if s.VXLANEnabled != nil {
		t.Fatal("applied settings despite unknown keys")
	}
	// As felix-observed.md ran Felix: bootstrap parameters are not errors.
	if err := s.ApplyEnviron([]string{"felix_vxlanEnabled=true", "FELIX_DefaultEndpointToHostAction=Return",
		"FELIX_DATASTORETYPE=etcdv3", "FELIX_ETCDENDPOINTS=http://10.97.0.1:2379", "FELIX_FELIXHOSTNAME=fx-n1",
		"FELIX_IPTABLESBACKEND=nft", "FELIX_LOGSEVERITYSYS=none", "FELIX_DebugSkipCTLBCleanup=true"}); err != nil {
		t.Fatal(err)
	}
	fc := &FelixConfiguration{ObjectMeta: ObjectMeta{Name: "default"}, Spec: s}
	if err := fc.Validate(); err != nil {
		t.Errorf("observed Felix environment does not validate: %v", err)
	}
	if !*s.VXLANEnabled || s.DefaultEndpointToHostAction != "Return" {
		t.Errorf("case-insensitive keys not applied: %+v", s)
	}
	if err := s.Set("FELIX_NODESELECTOR", "all()"); err == nil {
		t.Error("nodeSelector is not a Felix parameter and must not be settable")
	}
}

// TestFelixEnvNames checks every field has its upper-cased JSON name and the
// documented aliases are in place.
func TestFelixEnvNames(t *testing.T) {
	names := FelixEnvNames()
	if len(names) < 180 {
		t.Errorf("only %d overridable fields", len(names))
	}
	for field, want := range map[string]string{
		"ipipMTU":                   "FELIX_IPINIPMTU",
		"ipipEnabled":               "FELIX_IPINIPENABLED",
		"reportingInterval":         "FELIX_REPORTINGINTERVALSECS",
		"iptablesLockProbeInterval": "FELIX_IPTABLESLOCKPROBEINTERVALMILLIS",
		"externalNodesList":         "FELIX_EXTERNALNODESCIDRLIST",
		"bpfConntrackMode":          "FELIX_BPFCONNTRACKCLEANUPMODE",
		"vxlanEnabled":              "FELIX_VXLANENABLED",
	} {
		if !slices.Contains(names[field], want) {
			t.Errorf("%s: %v lacks %s", field, names[field], want)
		}
		if !slices.Contains(names[field], "FELIX_"+strings.ToUpper(field)) {
			t.Errorf("%s: %v lacks its JSON name", field, names[field])
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]string{`"90s"`: `"1m30s"`, `"0"`: `"0s"`, `"1.5h"`: `"1h30m0s"`, `"250ms"`: `"250ms"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if b, _ := json.Marshal(d); string(b) != want {
			t.Errorf("%s encodes as %s, want %s", in, b, want)
		}
	}
	for _, bad := range []string{`90`, `"soon"`, `""`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if d, _ := parseFelixDuration("1.5", false); d != 1500*time.Millisecond {
		t.Errorf("bare seconds: %v", d)
	}
}
