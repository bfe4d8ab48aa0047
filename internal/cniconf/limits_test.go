package cniconf

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSizesCheckedFirst: the network name's length and the MTU's range are
// refused by Parse, before any plugin uses them, and a huge bad value is
// echoed only as a short prefix (issue 8, item 7: a 10 MB name came back
// as 20 MB of error).
func TestSizesCheckedFirst(t *testing.T) {
	huge := strings.Repeat("a", 10<<20)
	for _, c := range []struct{ conf, want string }{
		{`{"name":"` + huge + `"}`, `is 10485760 bytes long, more than 63`},
		{`{"name":"` + strings.Repeat("b", 64) + `"}`, `more than 63`},
		{`{"name":"` + huge + `/"}`, `bytes long`},
		{`{"name":"bad/` + huge + `"}`, `bytes long`},
		{`{"name":"n","mtu":67}`, `"mtu": 67 is out of range`},
		{`{"name":"n","mtu":65536}`, `"mtu": 65536 is out of range`},
		{`{"name":"n","mtu":-1}`, `"mtu": -1 is out of range`},
		{`{"name":"n","ipam_lock_timeout_seconds":0}`, `"ipam_lock_timeout_seconds": 0 is out of range`},
	} {
		_, err := Parse([]byte(c.conf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%.40s...) = %.300v, want an error containing %q", c.conf, err, c.want)
			continue
		}
		if n := len(err.Error()); n > 300 {
			t.Errorf("Parse(%.40s...): the error is %d bytes long", c.conf, n)
		}
	}
	for _, ok := range []string{`{"name":"` + strings.Repeat("c", 63) + `"}`, `{"name":"n","mtu":68}`, `{"name":"n","mtu":65535}`, `{"name":"n","mtu":0}`} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%.40s) = %v", ok, err)
		}
	}
	if _, err := ParseArgs("X=" + huge); err == nil || len(err.Error()) > 300 {
		t.Errorf("ParseArgs with a huge unknown arg: %d bytes of error", len(err.Error()))
	}
	if _, err := ParseArgs("IP=" + huge); err == nil || len(err.Error()) > 300 {
		t.Errorf("ParseArgs with a huge IP: %d bytes of error", len(err.Error()))
	}
	if q := Quote("é" + strings.Repeat("x", 100)); !strings.HasSuffix(q, "... (102 bytes)") {
		t.Errorf("Quote = %s", q)
	}
}

func TestLockTimeoutAndFeatures(t *testing.T) {
	c, err := Parse([]byte(`{"name":"n"}`))
	if err != nil || c.IPAMLockTimeout != DefaultIPAMLockTimeout {
		t.Fatalf("default lock timeout %v, %v", c.IPAMLockTimeout, err)
	}
	c, err = Parse([]byte(`{"name":"n","ipam_lock_timeout_seconds":3,"feature_control":{"ip_addrs_no_ipam":true}}`))
	if err != nil || c.IPAMLockTimeout != 3*time.Second || !c.FeatureControl.IPAddrsNoIPAM {
		t.Fatalf("lock timeout %v, features %+v, %v", c.IPAMLockTimeout, c.FeatureControl, err)
	}
}

// TestNodeNameDeprecatedHostname: upstream's deprecated "hostname" names
// the node when "nodename" is absent, after the nodename file.
func TestNodeNameDeprecatedHostname(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	file := func(string) ([]byte, error) { return []byte("from-file"), nil }
	host := func() (string, error) { return "", errors.New("no OS host name") }
	c, _ := Parse([]byte(`{"name":"n","hostname":"old-style"}`))
	if n, err := c.NodeName(noFile, host); err != nil || n != "old-style" {
		t.Errorf("hostname without nodename: %q %v", n, err)
	}
	if n, err := c.NodeName(file, host); err != nil || n != "from-file" {
		t.Errorf("hostname with a nodename file: %q %v", n, err)
	}
	c, _ = Parse([]byte(`{"name":"n","hostname":"old-style","nodename":"new"}`))
	if n, err := c.NodeName(noFile, host); err != nil || n != "new" {
		t.Errorf("hostname and nodename: %q %v", n, err)
	}
}
