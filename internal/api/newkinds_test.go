package api

import "testing"

func TestValidateBGPFilter(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"full", "BGPFilter", `{"metadata":{"name":"f"},"spec":{
			"exportV4":[{"cidr":"10.0.0.0/8","matchOperator":"In","prefixLength":{"min":16,"max":24},"action":"Accept",
				"operations":[{"addCommunity":{"value":"65000:100"}},{"prependASPath":{"prefix":[65000]}},{"setPriority":{"value":512}}]},
				{"source":"RemotePeers","interface":"cali*","peerType":"eBGP","communities":{"values":["1:2:3"]},"asPathPrefix":[64512],"priority":10,"action":"Reject"}],
			"importV6":[{"cidr":"fd00::/8","matchOperator":"NotIn","action":"Reject"}]}}`, ""},
		{"no action", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"importV4":[{"cidr":"10.0.0.0/8","matchOperator":"In"}]}}`, "spec.importV4[0].action"},
		{"cidr without operator", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"cidr":"10.0.0.0/8","action":"Accept"}]}}`, "spec.exportV4[0]"},
		{"v6 cidr in a v4 list", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"cidr":"fd00::/8","matchOperator":"In","action":"Accept"}]}}`, "spec.exportV4[0].cidr"},
		{"prefix length past the family", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"cidr":"10.0.0.0/8","matchOperator":"In","prefixLength":{"max":33},"action":"Accept"}]}}`, "spec.exportV4[0].prefixLength.max"},
		{"prefix length without cidr", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"prefixLength":{"max":24},"action":"Accept"}]}}`, "spec.exportV4[0].prefixLength"},
		{"bad operator", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"cidr":"10.0.0.0/8","matchOperator":"Within","action":"Accept"}]}}`, "spec.exportV4[0].matchOperator"},
		{"operations on reject", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Reject","operations":[{"setPriority":{"value":5}}]}]}}`, "spec.exportV4[0].operations"},
		{"two operations in one", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","operations":[{"setPriority":{"value":5},"addCommunity":{"value":"1:1"}}]}]}}`, "spec.exportV4[0].operations[0]"},
		{"bad community", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","communities":{"values":["70000:1"]}}]}}`, "spec.exportV4[0].communities.values[0]"},
		{"bad interface", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","interface":"a/b"}]}}`, "spec.exportV4[0].interface"},
		{"interface too long", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"importV4":[{"action":"Reject","interface":"eth0123456789abc"}]}}`, "spec.importV4[0].interface"},
		{"mixed prepend", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","operations":[{"prependASPath":{"prefix":[65010,65020,"1.10"]}}]}]}}`, ""},
		{"empty prepend", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","operations":[{"prependASPath":{"prefix":[]}}]}]}}`, "spec.exportV4[0].operations[0].prependASPath.prefix"},
		{"long prepend", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV4":[{"action":"Accept","operations":[{"prependASPath":{"prefix":[1,2,3,4,5,6,7,8,9,10,11]}}]}]}}`, "spec.exportV4[0].operations[0].prependASPath.prefix"},
		{"priority zero", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"exportV6":[{"action":"Reject","priority":0}]}}`, "spec.exportV6[0].priority"},
		{"setPriority too big", "BGPFilter", `{"metadata":{"name":"f"},"spec":{"importV4":[{"action":"Accept","operations":[{"setPriority":{"value":2147483647}}]}]}}`, "spec.importV4[0].operations[0].setPriority.value"},
	})
}

func TestValidateKubeControllersConfiguration(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"full", "KubeControllersConfiguration", `{"metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","healthChecks":"Enabled",
			"etcdV3CompactionPeriod":"10m0s","prometheusMetricsPort":9094,"controllers":{"node":{"reconcilerPeriod":"5m0s","syncLabels":"Enabled",
			"hostEndpoint":{"autoCreate":"Disabled","templates":[{"generateName":"x","interfaceCIDRs":["10.0.0.0/8"]}]},"leakGracePeriod":"15m0s"},
			"policy":{"reconcilerPeriod":"5m0s"},"workloadEndpoint":{},"serviceAccount":{},"namespace":{},"loadBalancer":{"assignIPs":"AllServices"}}}}`, ""},
		{"not default", "KubeControllersConfiguration", `{"metadata":{"name":"other"},"spec":{"controllers":{}}}`, "metadata.name"},
		{"bad severity", "KubeControllersConfiguration", `{"metadata":{"name":"default"},"spec":{"logSeverityScreen":"Loud","controllers":{}}}`, "spec.logSeverityScreen"},
		{"bad port", "KubeControllersConfiguration", `{"metadata":{"name":"default"},"spec":{"prometheusMetricsPort":70000,"controllers":{}}}`, "spec.prometheusMetricsPort"},
		{"bad sync labels", "KubeControllersConfiguration", `{"metadata":{"name":"default"},"spec":{"controllers":{"node":{"syncLabels":"yes"}}}}`, "spec.controllers.node.syncLabels"},
	})
}

func TestValidateIPAMConfiguration(t *testing.T) {
	runValidationCases(t, []validationCase{
		{"full", "IPAMConfiguration", `{"metadata":{"name":"default"},"spec":{"strictAffinity":true,"maxBlocksPerHost":4,"autoAllocateBlocks":true,"kubeVirtVMAddressPersistence":"Disabled","ipCooldownSeconds":30}}`, ""},
		{"not default", "IPAMConfiguration", `{"metadata":{"name":"ipam"},"spec":{"strictAffinity":false,"autoAllocateBlocks":true}}`, "metadata.name"},
		{"negative blocks", "IPAMConfiguration", `{"metadata":{"name":"default"},"spec":{"maxBlocksPerHost":-1}}`, "spec.maxBlocksPerHost"},
		{"bad persistence", "IPAMConfiguration", `{"metadata":{"name":"default"},"spec":{"kubeVirtVMAddressPersistence":"Sometimes"}}`, "spec.kubeVirtVMAddressPersistence"},
	})
}
