package cniconf

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

const upstreamConf = `{
  "cniVersion": "0.3.1",
  "name": "k8s-pod-network",
  "type": "calico",
  "etcd_endpoints": "http://127.0.0.1:23790",
  "nodename": "node1",
  "nodename_file_optional": true,
  "ipam_lock_file": "/tmp/ipam.lock",
  "log_level": "warning",
  "some_future_field": {"x": [1,2]},
  "ipam": { "type": "calico-ipam" }
}`

func TestParseUpstreamConfig(t *testing.T) {
	c, err := Parse([]byte(upstreamConf))
	if err != nil {
		t.Fatal(err)
	}
	if c.CNIVersion != "0.3.1" || c.Name != "k8s-pod-network" || c.Type != "calico" || c.Nodename != "node1" ||
		!c.NodenameFileOptional || c.IPAMLockFile != "/tmp/ipam.lock" || c.LogLevel != "warning" || c.IPAM.Type != "calico-ipam" {
		t.Fatalf("parsed %+v", c)
	}
	// Defaults.
	if !c.IPAM.AssignIPv4 || c.IPAM.AssignIPv6 || c.NodenameFile != DefaultNodenameFile || c.MTU != 0 {
		t.Fatalf("defaults %+v", c)
	}
	if string(c.Raw) != upstreamConf {
		t.Fatal("Raw not kept")
	}
}

func TestParseFields(t *testing.T) {
	c, err := Parse([]byte(`{"name":"n","mtu":1450,"num_queues":2,"datastore_type":"etcdv3",
	  "etcd_ca_cert_file":"/ca","etcd_cert_file":"/c","etcd_key_file":"/k","nodename_file":"/nf","log_file_path":"/l",
	  "ipam":{"type":"calico-ipam","assign_ipv4":"false","assign_ipv6":true,"ipv4_pools":["p1","10.0.0.0/16"],"ipv6_pools":["fd00::/64"]},
	  "container_settings":{"allow_ip_forwarding":true},
	  "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/26"}]},
	  "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 1450 || c.NumQueues != 2 || c.EtcdCACertFile != "/ca" || c.NodenameFile != "/nf" || c.LogFilePath != "/l" ||
		c.IPAM.AssignIPv4 || !c.IPAM.AssignIPv6 || len(c.IPAM.IPv4Pools) != 2 || c.IPAM.IPv6Pools[0] != "fd00::/64" ||
		!c.ContainerSettings.AllowIPForwarding || !c.HasValidAttachments || c.ValidAttachments[0].ContainerID != "c1" {
		t.Fatalf("parsed %+v", c)
	}
	addrs, err := c.PrevResultAddrs()
	if err != nil || len(addrs) != 1 || addrs[0].String() != "10.0.0.5/26" {
		t.Fatalf("prevResult %v %v", addrs, err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{`{"name":"n","mtu":"abc"}`, `netconf field "mtu": expected a number, got "abc"`},
		{`{"name":"n","mtu":1.5}`, `netconf field "mtu": expected a whole number, got 1.5`},
		{`{"name":"n","nodename":7}`, `netconf field "nodename": expected a string, got 7`},
		{`{"name":"n","nodename_file_optional":"yes"}`, `netconf field "nodename_file_optional": expected true or false, got "yes"`},
		{`{"name":"n","ipam":{"assign_ipv4":"maybe"}}`, `netconf field "ipam.assign_ipv4": expected "true" or "false", got "maybe"`},
		{`{"name":"n","ipam":{"ipv4_pools":"p1"}}`, `netconf field "ipam.ipv4_pools": expected a list of strings, got "p1"`},
		{`{"name":"n","ipam":[]}`, `netconf field "ipam": expected an object, got []`},
		{`{"name":"n","container_settings":{"allow_ip_forwarding":1}}`, `netconf field "container_settings.allow_ip_forwarding": expected true or false, got 1`},
		{`{"name":"bad name!"}`, `netconf field "name": "bad name!" is not a valid network name`},
		{`{"type":"calico"}`, `netconf field "name": missing`},
		{`{"name":"n","datastore_type":"kubernetes"}`, `"kubernetes" is not supported`},
		{`[1]`, `netconf: not a JSON object`},
	} {
		_, err := Parse([]byte(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want %q", tc.conf, err, tc.want)
		}
	}
	// Several errors are all reported.
	_, err := Parse([]byte(`{"name":"n","mtu":"x","log_level":3}`))
	if err == nil || !strings.Contains(err.Error(), `"mtu"`) || !strings.Contains(err.Error(), `"log_level"`) {
		t.Errorf("multiple errors: %v", err)
	}
}

func TestNodeName(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	host := func() (string, error) { return "Host-A", nil }
	c, _ := Parse([]byte(`{"name":"n","nodename":"given"}`))
	if n, err := c.NodeName(noFile, host); err != nil || n != "given" {
		t.Fatalf("given nodename: %q %v (needs no file)", n, err)
	}
	c, _ = Parse([]byte(`{"name":"n","nodename_file":"/x"}`))
	file := func(p string) ([]byte, error) {
		if p != "/x" {
			t.Fatalf("read %s", p)
		}
		return []byte("from-file\n"), nil
	}
	if n, err := c.NodeName(file, host); err != nil || n != "from-file" {
		t.Fatalf("file: %q %v", n, err)
	}
	if _, err := c.NodeName(noFile, host); err == nil || !strings.Contains(err.Error(), "/x") || !strings.Contains(err.Error(), "nodename_file_optional") {
		t.Fatalf("missing mandatory file: %v", err)
	}
	c, _ = Parse([]byte(`{"name":"n","nodename_file_optional":true}`))
	if n, err := c.NodeName(noFile, host); err != nil || n != "host-a" {
		t.Fatalf("hostname fallback: %q %v", n, err)
	}
	if _, err := c.NodeName(noFile, func() (string, error) { return "", errors.New("no") }); err == nil {
		t.Fatal("no name at all accepted")
	}
}

func TestEtcdConfig(t *testing.T) {
	env := map[string]string{"ETCD_ENDPOINTS": "http://env:2379", "ETCD_CA_CERT_FILE": "/envca", "ETCD_USERNAME": "u"}
	getenv := func(k string) string { return env[k] }
	c, _ := Parse([]byte(`{"name":"n","etcd_endpoints":"http://a:2379, http://b:2379","etcd_cert_file":"/c","etcd_key_file":"/k"}`))
	cfg, err := c.EtcdConfig(getenv)
	if err != nil || len(cfg.Endpoints) != 2 || cfg.Endpoints[1] != "http://b:2379" || cfg.CACertFile != "/envca" || cfg.CertFile != "/c" || cfg.Username != "u" {
		t.Fatalf("%+v %v", cfg, err)
	}
	c, _ = Parse([]byte(`{"name":"n"}`))
	if cfg, err := c.EtcdConfig(getenv); err != nil || cfg.Endpoints[0] != "http://env:2379" {
		t.Fatalf("env fallback %+v %v", cfg, err)
	}
	if _, err := c.EtcdConfig(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "etcd_endpoints") {
		t.Fatalf("nothing configured: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=abc;FOO=bar;IP=10.0.0.9")
	if err != nil || a.K8sPodNamespace != "ns" || a.K8sPodName != "web-1" || a.IP != netip.MustParseAddr("10.0.0.9") || !a.IgnoreUnknown {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := ParseArgs("FOO=bar"); err == nil || !strings.Contains(err.Error(), "IgnoreUnknown") {
		t.Fatalf("unknown without IgnoreUnknown: %v", err)
	}
	if _, err := ParseArgs("IP=nope"); err == nil {
		t.Fatal("bad IP accepted")
	}
	if _, err := ParseArgs("IP"); err == nil {
		t.Fatal("pair without = accepted")
	}
	if a, err := ParseArgs(""); err != nil || a.IP.IsValid() {
		t.Fatal("empty args")
	}
}

func TestIPAMResultPrintsLikeUpstream(t *testing.T) {
	r := IPAMResult([]netip.Prefix{netip.MustParsePrefix("10.244.166.130/26")})
	for _, tc := range []struct{ version, want string }{
		{"0.3.1", "{\n    \"cniVersion\": \"0.3.1\",\n    \"ips\": [\n        {\n            \"version\": \"4\",\n            \"address\": \"10.244.166.130/26\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"10.244.166.130/26\"\n        }\n    ],\n    \"dns\": {}\n}"},
		{"1.0.0", "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.244.166.130/26\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"10.244.166.130/26\"\n        }\n    ]\n}"},
	} {
		got := captureStdout(t, func() error { return types.PrintResult(r, tc.version) })
		if got != tc.want {
			t.Errorf("cniVersion %s:\n got %s\nwant %s", tc.version, got, tc.want)
		}
	}
}

func captureStdout(t *testing.T, fn func() error) string {
	t.Helper()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = wr
	ferr := fn()
	os.Stdout = old
	wr.Close()
	b := make([]byte, 1<<16)
	n, _ := rd.Read(b)
	rd.Close()
	if ferr != nil {
		t.Fatal(ferr)
	}
	return string(b[:n])
}

func TestPodMTU(t *testing.T) {
	files := map[string]string{"/good": "1410\n", "/bad": "jumbo", "/tiny": "12"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	for _, tc := range []struct {
		conf, err string
		want      int
	}{
		{`{"name":"n","mtu":1400,"mtu_file":"/good"}`, "", 1400}, // the netconf wins
		{`{"name":"n","mtu_file":"/good"}`, "", 1410},
		{`{"name":"n","mtu_file":"/none"}`, "", 0}, // kernel default
		{`{"name":"n"}`, "", 0},                    // default file absent here
		{`{"name":"n","mtu_file":"/bad"}`, `pod MTU file /bad holds "jumbo"`, 0},
		{`{"name":"n","mtu_file":"/tiny"}`, `not an MTU between 68 and 65535`, 0},
	} {
		c, err := Parse([]byte(tc.conf))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.PodMTU(read)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: PodMTU = %d, %v; want error %q", tc.conf, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: PodMTU = %d, %v; want %d", tc.conf, got, err, tc.want)
		}
	}
	c, _ := Parse([]byte(`{"name":"n"}`))
	if c.MTUFile != DefaultMTUFile {
		t.Errorf("default mtu_file %q", c.MTUFile)
	}
	if _, err := Parse([]byte(`{"name":"n","mtu_file":5}`)); err == nil || !strings.Contains(err.Error(), `"mtu_file"`) {
		t.Errorf("mtu_file of the wrong type: %v", err)
	}
}
