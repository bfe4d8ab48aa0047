package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	called := ""
	saved := applets
	t.Cleanup(func() { applets = saved })
	applets = map[string]func([]string) int{}
	for name := range saved {
		applets[name] = func(args []string) int { called = name + ":" + strings.Join(args, ","); return 7 }
	}
	applets["cni"] = func(args []string) int { called = "cni:" + strings.Join(args, ","); return 7 }
	noEnv := func(string) string { return "" }
	cniEnv := func(k string) string {
		if k == "CNI_COMMAND" {
			return "ADD"
		}
		return ""
	}
	for _, tc := range []struct {
		argv   []string
		getenv func(string) string
		want   string
		rc     int
	}{
		{[]string{"/usr/local/bin/calicoctl", "get", "nodes"}, noEnv, "ctl:get,nodes", 7},
		{[]string{"/opt/cni/bin/calico", "ctl", "version"}, noEnv, "ctl:version", 7},
		{[]string{"calico", "version"}, noEnv, "version:", 7},
		{[]string{"/opt/cni/bin/calico"}, cniEnv, "cni:", 7},
		{[]string{"calico"}, noEnv, "", 2},
		{[]string{"calico", "frobnicate"}, noEnv, "", 2},
		{[]string{"something-else"}, noEnv, "", 2},
		{[]string{"calico", "--version"}, noEnv, "version:", 7},
		{[]string{"calico", "-v"}, noEnv, "version:", 7},
		{[]string{"calico", "--help"}, noEnv, "", 0},
		{[]string{"calico", "-h"}, noEnv, "", 0},
		{[]string{"calico", "help"}, noEnv, "", 0},
		{[]string{"calico", "--help", "extra"}, noEnv, "", 2},
	} {
		called = ""
		var stdout, stderr bytes.Buffer
		rc := dispatch(tc.argv, tc.getenv, &stdout, &stderr)
		if rc != tc.rc || called != tc.want {
			t.Errorf("dispatch(%q) = %d, called %q; want %d, %q", tc.argv, rc, called, tc.rc, tc.want)
		}
		if tc.rc == 2 && !strings.Contains(stderr.String(), "applets:") {
			t.Errorf("dispatch(%q): no applet list on stderr: %q", tc.argv, stderr.String())
		}
		if tc.rc == 0 && (!strings.Contains(stdout.String(), "applets:") || stderr.Len() != 0) {
			t.Errorf("dispatch(%q): help not on stdout alone: stdout %q, stderr %q", tc.argv, stdout.String(), stderr.String())
		}
	}
}
