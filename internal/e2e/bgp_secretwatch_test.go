package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeK8sSecret lays out <dir>/<name> as the kubelet mounts a Secret:
// the data in a timestamped directory, ..data pointing at it (swapped by
// a rename), each key a symlink through ..data.
func writeK8sSecret(t *testing.T, dir, name, version, key, value string) {
	t.Helper()
	sec := filepath.Join(dir, name)
	data := filepath.Join(sec, "..data_"+version)
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, key), []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(sec, "..data_tmp")
	if err := os.Symlink(filepath.Base(data), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(sec, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(sec, key)); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(sec, key)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrivilegedBGPSecretRotation: n1's BGPPeer password comes from a
// Kubernetes-style secret mount. The BIRD ToR changes its password (the
// session goes down), then the secret is updated by a ..data swap: n1
// notices through inotify (the 2 s poll is off once the routes are
// synced) and the session comes back up with the new password.
func TestPrivilegedBGPSecretRotation(t *testing.T) {
	c := newLab1(t)
	gw := map[string]string{"n1": "10.99.0.1"}
	tor := startBird(t, c.lab.Router, torConf("10.99.0.1", c.nodes, gw, ` password "first-pw";`))
	secrets := t.TempDir()
	writeK8sSecret(t, secrets, "bgp-pw", "1", "pw", "first-pw")
	c.calicoctl(t, strings.Join([]string{noEncapPool, meshOff,
		peerDoc("tor", "10.99.0.1", 64512, secretPassword("bgp-pw", "pw"))}, "---\n"), "apply", "-f", "-")
	c.startBGP(t, "CALICO_BGP_SECRET_DIR="+secrets)
	c.waitEstablished(t, c.n1, 1)
	if !strings.Contains(c.procs["n1"].Stderr.String(), "BGP secrets watched") {
		t.Fatalf("the secret directory is not watched")
	}
	// From here on the 2 s tick no longer re-reads the secrets: only the
	// watch can notice the change below.
	c.eventually(t, "learned routes complete", func() error {
		if !strings.Contains(c.procs["n1"].Stderr.String(), "BGP learned routes complete") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	conf := filepath.Join(t.TempDir(), "bird2.conf")
	if err := os.WriteFile(conf, []byte(torConf("10.99.0.1", c.nodes, gw, ` password "second-pw";`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := tor.birdc("configure", `"`+conf+`"`); err != nil || !strings.Contains(out, "Reconfigur") {
		t.Fatalf("birdc configure: %v %s", err, out)
	}
	c.eventually(t, "session down after the ToR's password change", func() error {
		s, err := c.procs["n1"].Status()
		if err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].State == "Established" {
			return fmt.Errorf("%+v %v", s.BGPPeers, err)
		}
		return nil
	})
	writeK8sSecret(t, secrets, "bgp-pw", "2", "pw", "second-pw")
	c.waitEstablished(t, c.n1, 1)
	c.eventually(t, "ToR has n1 up", func() error {
		out, err := tor.birdc("show", "protocols")
		if err != nil || !strings.Contains(out, "n1       BGP      master   up") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
}
