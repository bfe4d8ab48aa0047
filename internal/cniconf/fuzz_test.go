package cniconf

import "testing"

// FuzzParse: untrusted netconf never panics, and what parses has a valid name.
func FuzzParse(f *testing.F) {
	f.Add([]byte(upstreamConf))
	f.Add([]byte(`{"name":"n","mtu":"x","ipam":{"assign_ipv4":"false","ipv4_pools":["a"]}}`))
	f.Add([]byte(`{"name":"n","prevResult":{"ips":[{"address":"10.0.0.1/32"}]},"cni.dev/valid-attachments":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if !validName(c.Name) {
			t.Fatalf("accepted invalid name %q", c.Name)
		}
		_, _ = c.PrevResultAddrs()
	})
}

// FuzzParseArgs: untrusted CNI_ARGS never panic.
func FuzzParseArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.0.0.1")
	f.Add("IP=;=;;")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err == nil && a.IP.IsValid() && a.IP.Is4In6() {
			t.Fatalf("IPv4-mapped address kept: %v", a.IP)
		}
	})
}
