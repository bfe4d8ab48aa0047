package agent

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/dataplane/ifaces"
)

// A host with the usual clutter, in index order as the kernel lists it.
func fakeIfaces() []ifaces.Interface {
	return []ifaces.Interface{
		{Name: "lo", Index: 1, Addrs: []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128")}},
		{Name: "eth0", Index: 2, Addrs: []netip.Prefix{pfx("10.99.0.11/24"), pfx("fd00:99::11/64"), pfx("fe80::1/64")}},
		{Name: "eth1", Index: 3, Addrs: []netip.Prefix{pfx("192.168.50.5/24")}},
		{Name: "docker0", Index: 4, Addrs: []netip.Prefix{pfx("172.17.0.1/16")}},
		{Name: "cali1234", Index: 5},
		{Name: "vxlan.calico", Index: 6, Addrs: []netip.Prefix{pfx("10.244.1.0/32")}},
		{Name: "tunl0", Index: 7, Addrs: []netip.Prefix{pfx("10.244.1.1/32")}},
		{Name: "veth99", Index: 8, Addrs: []netip.Prefix{pfx("10.200.0.1/24")}},
		{Name: "virbr0", Index: 9, Addrs: []netip.Prefix{pfx("192.168.122.1/24")}},
	}
}

func detect(t *testing.T, method string, version int, reach ReachFunc) (string, string, error) {
	t.Helper()
	m, err := ParseAutodetectMethod(method)
	if err != nil {
		t.Fatalf("ParseAutodetectMethod(%q): %v", method, err)
	}
	name, p, err := m.Detect(fakeIfaces(), version, reach)
	return name, p.String(), err
}

func TestAutodetectMethods(t *testing.T) {
	reach := func(dest string, version int) (netip.Addr, error) {
		if dest == "10.99.0.1" {
			return ip("10.99.0.11"), nil
		}
		if dest == "8.8.8.8" {
			return ip("192.168.50.5"), nil
		}
		return netip.Addr{}, errors.New("network is unreachable")
	}
	for _, tc := range []struct {
		method    string
		version   int
		wantIface string
		wantAddr  string
	}{
		// Highest index first, skipping the excluded names: eth1 before eth0.
		{"", 4, "eth1", "192.168.50.5/24"},
		{"first-found", 4, "eth1", "192.168.50.5/24"},
		{"first-found", 6, "eth0", "fd00:99::11/64"},
		{"interface=eth0", 4, "eth0", "10.99.0.11/24"},
		{"interface=^eth9$, ^eth0$", 4, "eth0", "10.99.0.11/24"},
		{"interface=eth9", 4, "veth99", "10.200.0.1/24"}, // unanchored, as upstream
		{"interface=docker.*", 4, "docker0", "172.17.0.1/16"},
		{"skip-interface=eth1", 4, "eth0", "10.99.0.11/24"},
		{"skip-interface=eth.*", 4, "", ""},
		{"cidr=10.99.0.0/16", 4, "eth0", "10.99.0.11/24"},
		{"cidr=10.0.0.0/8, 172.16.0.0/12", 4, "veth99", "10.200.0.1/24"},
		{"can-reach=10.99.0.1", 4, "eth0", "10.99.0.11/24"},
		{"can-reach=8.8.8.8", 4, "eth1", "192.168.50.5/24"},
	} {
		name, addr, err := detect(t, tc.method, tc.version, reach)
		if tc.wantIface == "" {
			if !errors.Is(err, ErrNoAddress) {
				t.Errorf("%q: got %s %s %v, want ErrNoAddress", tc.method, name, addr, err)
			}
			continue
		}
		if err != nil || name != tc.wantIface || addr != tc.wantAddr {
			t.Errorf("%q (v%d): got %s %s %v, want %s %s", tc.method, tc.version, name, addr, err, tc.wantIface, tc.wantAddr)
		}
	}
	if _, _, err := detect(t, "can-reach=203.0.113.1", 4, reach); err == nil || !strings.Contains(err.Error(), "network is unreachable") {
		t.Errorf("can-reach unreachable: %v", err)
	}
}

func TestAutodetectMethodErrors(t *testing.T) {
	for method, want := range map[string]string{
		"interface=(":            `interface: "(" is not a valid regular expression`,
		"cidr=10.0.0.0/33":       `cidr: "10.0.0.0/33" is not a CIDR`,
		"first-found=x":          `unknown method "first-found"`,
		"bogus":                  `"bogus": want first-found`,
		"interface=":             `"interface=": want first-found`,
		"kubernetes-internal-ip": "needs Kubernetes",
	} {
		if _, err := ParseAutodetectMethod(method); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAutodetectMethod(%q) = %v, want it to contain %q", method, err, want)
		}
	}
}

func TestResolveIP(t *testing.T) {
	ff, _ := ParseAutodetectMethod("")
	byIf, _ := ParseAutodetectMethod("interface=nomatch")
	ifs := fakeIfaces()
	for _, tc := range []struct {
		setting, current string
		version          int
		m                AutodetectMethod
		want, warn, err  string
	}{
		{"", "", 4, ff, "192.168.50.5/24", "", ""},
		{"", "10.1.1.1/24", 4, ff, "10.1.1.1/24", "", ""},                    // keep the Node's value
		{"autodetect", "10.1.1.1/24", 4, ff, "192.168.50.5/24", "", ""},      // re-detect
		{"autodetect", "10.1.1.1/24", 4, byIf, "10.1.1.1/24", "keeping", ""}, // detection fails: keep
		{"autodetect", "", 4, byIf, "", "", "set IP explicitly"},
		{"none", "10.1.1.1/24", 4, ff, "10.1.1.1/24", "", ""},
		{"none", "", 4, ff, "", "", ""},
		{"10.99.0.11", "", 4, ff, "10.99.0.11/24", "", ""},     // prefix from the interface
		{"10.99.0.11/16", "", 4, ff, "10.99.0.11/16", "", ""},  // given prefix wins
		{"10.7.7.7", "", 4, ff, "10.7.7.7/32", "no local", ""}, // not on the host
		{"fd00::5", "", 4, ff, "", "", "not an IPv4 address"},
		{"", "", 6, ff, "", "", ""}, // IPv6 only when asked for
		{"autodetect", "", 6, ff, "fd00:99::11/64", "", ""},
		{"fd00:99::11", "", 6, ff, "fd00:99::11/64", "", ""},        // IP6 literal: prefix from the interface
		{"fd00:99::11/80", "", 6, ff, "fd00:99::11/80", "", ""},     // given prefix wins
		{"fd00:7::7", "", 6, ff, "fd00:7::7/128", "no local", ""},   // not on the host
		{"none", "fd00:99::12/64", 6, ff, "fd00:99::12/64", "", ""}, // keep the Node's value
		{"10.99.0.11", "", 6, ff, "", "", "not an IPv6 address"},
	} {
		got, warn, err := resolveIP(tc.setting, tc.current, tc.version, tc.m, ifs, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolveIP(%q,%q,v%d) error %v, want %q", tc.setting, tc.current, tc.version, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || (tc.warn == "") != (warn == "") || !strings.Contains(warn, tc.warn) {
			t.Errorf("resolveIP(%q,%q,v%d) = %q, %q, %v; want %q, warning %q", tc.setting, tc.current, tc.version, got, warn, err, tc.want, tc.warn)
		}
	}
}
