package install

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/testutil"
)

// testConfig is a full configuration with TLS, a password, node settings
// and a value that needs quoting; src is a stand-in binary.
func testConfig(t *testing.T) *Config {
	t.Helper()
	src := filepath.Join(t.TempDir(), "calico")
	if err := os.WriteFile(src, []byte("#!/bin/true\nbinary v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Config{
		Source: src, BinDir: "/usr/local/bin", CNIBinDir: "/opt/cni/bin", CNIConfDir: "/etc/cni/net.d",
		CNIConfName: "10-calico.conflist", ConfigDir: "/etc/calico", UnitDir: "/etc/systemd/system",
		NetworkName: "k8s-pod-network", CNIVersion: "1.0.0", Portmap: true,
		Etcd: Etcd{
			Endpoints:  []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"},
			CACertFile: "/etc/calico/pki/ca.pem", CertFile: "/etc/calico/pki/node.pem", KeyFile: "/etc/calico/pki/node-key.pem",
			Username: "calico", Password: `s3cr"et$`,
		},
		NodenameFile: cniconf.DefaultNodenameFile, MTUFile: cniconf.DefaultMTUFile,
		RunDir: "/var/run/calico", IPAMLockFile: cniconf.DefaultIPAMLockFile,
		NodeEnv: []EnvVar{
			{"NODENAME", "node1"}, {"CALICO_NETWORKING_BACKEND", "vxlan"},
			{"IP_AUTODETECTION_METHOD", `interface=eth\d+`}, {"FELIX_VXLANVNI", "4096"},
		},
		Watchdog: time.Minute,
	}
}

// snapshot renders a tree as "path kind mode content-or-target" lines.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			tgt, _ := os.Readlink(p)
			b.WriteString(rel + " -> " + tgt + "\n")
		case fi.IsDir():
			b.WriteString(rel + "/\n")
		default:
			c, _ := os.ReadFile(p)
			b.WriteString(rel + " " + fi.Mode().String() + " " + hashBytes(c) + "\n")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func opts(root string, out *bytes.Buffer) Options {
	return Options{Root: root, Manifest: "/var/lib/calico/install-manifest.json", Out: out}
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInstallLifecycle: install into a root that already holds unrelated
// files, check every file, re-run (nothing changes), change the config
// (only the affected files change), hand-edit one file (kept by a re-run
// and by the uninstall), uninstall (the root is as before, plus the
// hand-edited file and its directory).
func TestInstallLifecycle(t *testing.T) {
	root := t.TempDir()
	// An operator's unrelated files in directories install also uses.
	for p, c := range map[string]string{"/etc/hostname": "node1\n", "/opt/cni/bin/portmap": "plugin", "/var/lib/calico/nodename": "node1"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	before := snapshot(t, root)
	c := testConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Install(c.Plan(), opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "created "); n != 9 {
		t.Errorf("first install: %d created, want 9:\n%s", n, out.String())
	}
	checkFiles(t, root, c)

	// A re-run changes nothing, not even the manifest.
	installed := snapshot(t, root)
	out.Reset()
	if err := Install(c.Plan(), opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "unchanged "); n != 9 || strings.Count(out.String(), "\n") != 9 {
		t.Errorf("re-run: want 9 unchanged lines:\n%s", out.String())
	}
	if after := snapshot(t, root); after != installed {
		t.Errorf("re-run changed the tree:\nbefore\n%s\nafter\n%s", installed, after)
	}

	// A dry run of a changed config prints a diff and writes nothing.
	c.Etcd.Endpoints = []string{"https://10.0.0.9:2379"}
	out.Reset()
	o := opts(root, &out)
	o.DryRun = true
	if err := Install(c.Plan(), o); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"would update /etc/cni/net.d/10-calico.conflist:",
		`-       "etcd_endpoints": "https://10.0.0.1:2379,https://10.0.0.2:2379",`,
		`+       "etcd_endpoints": "https://10.0.0.9:2379",`,
		"unchanged /etc/systemd/system/calico-node.service",
		`ETCD_PASSWORD=<redacted>`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "s3cr") {
		t.Errorf("dry run shows the password:\n%s", out.String())
	}
	if after := snapshot(t, root); after != installed {
		t.Errorf("dry run changed the tree")
	}

	// Hand-edit the env file, then install the changed config: the edit
	// is kept and reported, the other files follow the config.
	env := filepath.Join(root, "/etc/calico/calico-node.env")
	edited := read(t, root, "/etc/calico/calico-node.env") + "IP=10.0.0.5/24\n"
	os.WriteFile(env, []byte(edited), 0o600)
	out.Reset()
	if err := Install(c.Plan(), opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"updated   /etc/cni/net.d/10-calico.conflist", "updated   /etc/calico/calicoctl.cfg", "kept      /etc/calico/calico-node.env (changed by hand"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("install after an edit lacks %q:\n%s", want, out.String())
		}
	}
	if got := read(t, root, "/etc/calico/calico-node.env"); got != edited {
		t.Errorf("hand edit lost: %q", got)
	}

	// Uninstall: everything but the edited file goes; the root is as before.
	out.Reset()
	if err := Uninstall(opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kept      /etc/calico/calico-node.env (changed by hand") || strings.Count(out.String(), "removed ") != 8 {
		t.Errorf("uninstall report:\n%s", out.String())
	}
	if got := read(t, root, "/etc/calico/calico-node.env"); got != edited {
		t.Errorf("uninstall touched the hand-edited file: %q", got)
	}
	os.Remove(env)
	os.Remove(filepath.Join(root, "/etc/calico"))
	if after := snapshot(t, root); after != before {
		t.Errorf("after uninstall (minus the edited file) the root differs:\nbefore\n%s\nafter\n%s", before, after)
	}
	if err := Uninstall(opts(root, &out)); err == nil || !strings.Contains(err.Error(), "nothing installed") {
		t.Errorf("second uninstall: %v", err)
	}
}

// checkFiles asserts the content of every installed path.
func checkFiles(t *testing.T, root string, c *Config) {
	t.Helper()
	links := map[string]string{
		"/usr/local/bin/calico-node": "calico", "/usr/local/bin/calicoctl": "calico",
		"/opt/cni/bin/calico": "../../../usr/local/bin/calico", "/opt/cni/bin/calico-ipam": "../../../usr/local/bin/calico",
	}
	for p, want := range links {
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != want {
			t.Errorf("%s -> %q %v, want %q", p, got, err, want)
		}
		// Relative links resolve inside the root.
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || !strings.Contains(string(b), "binary v1") {
			t.Errorf("%s does not reach the binary: %v", p, err)
		}
	}
	for p, mode := range map[string]fs.FileMode{
		"/usr/local/bin/calico": 0o755, "/etc/cni/net.d/10-calico.conflist": 0o644, "/etc/calico/calicoctl.cfg": 0o600,
		"/etc/calico/calico-node.env": 0o600, "/etc/systemd/system/calico-node.service": 0o644,
	} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", p, fi.Mode(), err, mode)
		}
	}
	// The conflist is what libcni and our plugin accept.
	conflist := []byte(read(t, root, "/etc/cni/net.d/10-calico.conflist"))
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		t.Fatalf("libcni: %v", err)
	}
	if list.Name != "k8s-pod-network" || len(list.Plugins) != 2 || list.Plugins[1].Network.Type != "portmap" ||
		!list.Plugins[1].Network.Capabilities["portMappings"] {
		t.Errorf("conflist: %+v", list)
	}
	var raw map[string]any
	json.Unmarshal(list.Plugins[0].Bytes, &raw)
	raw["name"], raw["cniVersion"] = list.Name, list.CNIVersion
	b, _ := json.Marshal(raw)
	nc, err := cniconf.Parse(b)
	if err != nil {
		t.Fatalf("calico netconf: %v", err)
	}
	ec, err := nc.EtcdConfig(func(string) string { return "" })
	if err != nil || strings.Join(ec.Endpoints, ",") != "https://10.0.0.1:2379,https://10.0.0.2:2379" ||
		ec.CACertFile != c.Etcd.CACertFile || ec.CertFile != c.Etcd.CertFile || ec.KeyFile != c.Etcd.KeyFile {
		t.Errorf("netconf datastore: %+v %v", ec, err)
	}
	if nc.IPAM.Type != "calico-ipam" || nc.NodenameFile != c.NodenameFile || nc.MTUFile != c.MTUFile || nc.IPAMLockFile != c.IPAMLockFile {
		t.Errorf("netconf: %+v", nc)
	}
	wantCfg := `apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
spec:
  datastoreType: etcdv3
  etcdEndpoints: "https://10.0.0.1:2379,https://10.0.0.2:2379"
  etcdCACertFile: "/etc/calico/pki/ca.pem"
  etcdCertFile: "/etc/calico/pki/node.pem"
  etcdKeyFile: "/etc/calico/pki/node-key.pem"
  etcdUsername: "calico"
  etcdPassword: "s3cr\"et$"
`
	if got := read(t, root, "/etc/calico/calicoctl.cfg"); got != wantCfg {
		t.Errorf("calicoctl.cfg:\n%s\nwant\n%s", got, wantCfg)
	}
	vars, err := ParseEnvFile([]byte(read(t, root, "/etc/calico/calico-node.env")))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, v := range vars {
		env[v.Name] = v.Value
	}
	for k, want := range map[string]string{
		"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "https://10.0.0.1:2379,https://10.0.0.2:2379",
		"ETCD_CA_CERT_FILE": c.Etcd.CACertFile, "ETCD_CERT_FILE": c.Etcd.CertFile, "ETCD_KEY_FILE": c.Etcd.KeyFile,
		"ETCD_USERNAME": "calico", "ETCD_PASSWORD": `s3cr"et$`, "NODENAME": "node1", "CALICO_NETWORKING_BACKEND": "vxlan",
		"IP_AUTODETECTION_METHOD": `interface=eth\d+`, "FELIX_VXLANVNI": "4096",
		"CALICO_NODENAME_FILE": c.NodenameFile, "CALICO_MTU_FILE": c.MTUFile, "CALICO_RUN_DIR": c.RunDir,
	} {
		if env[k] != want {
			t.Errorf("env %s=%q, want %q", k, env[k], want)
		}
	}
	unit := read(t, root, "/etc/systemd/system/calico-node.service")
	for _, want := range []string{
		"Type=notify\n", "WatchdogSec=60s\n", "Restart=on-failure\n", "After=network-online.target\n", "Wants=network-online.target\n",
		"EnvironmentFile=/etc/calico/calico-node.env\n", "ExecStart=/usr/local/bin/calico-node\n",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_NET_BIND_SERVICE\n",
		"ProtectSystem=strict\n", "StateDirectory=calico\n", "RuntimeDirectory=calico\n", "ProtectHome=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

// TestInstallForeignFile: a file install did not write stops the install
// before anything is written; --force keeps it aside, and uninstall puts
// it back. A file already identical to ours is adopted and left in place.
func TestInstallForeignFile(t *testing.T) {
	root := t.TempDir()
	c := testConfig(t)
	conf := filepath.Join(root, "/etc/cni/net.d/10-calico.conflist")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	os.WriteFile(conf, []byte(`{"my":"own"}`), 0o644)
	os.MkdirAll(filepath.Join(root, "/usr/local/bin"), 0o755)
	os.Symlink("calico", filepath.Join(root, "/usr/local/bin/calicoctl")) // same as ours
	before := snapshot(t, root)
	var out bytes.Buffer
	err := Install(c.Plan(), opts(root, &out))
	if err == nil || !strings.Contains(err.Error(), "/etc/cni/net.d/10-calico.conflist exists and was not written by calico install") {
		t.Fatalf("foreign file: %v", err)
	}
	if after := snapshot(t, root); after != before {
		t.Fatalf("a refused install wrote something:\n%s", after)
	}
	o := opts(root, &out)
	o.Force = true
	if err := Install(c.Plan(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replaced  /etc/cni/net.d/10-calico.conflist (the previous one is kept at /var/lib/calico/install-backup/etc/cni/net.d/10-calico.conflist)") ||
		!strings.Contains(out.String(), "unchanged /usr/local/bin/calicoctl") {
		t.Errorf("forced install:\n%s", out.String())
	}
	out.Reset()
	if err := Uninstall(opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "restored  /etc/cni/net.d/10-calico.conflist") || !strings.Contains(out.String(), "left      /usr/local/bin/calicoctl") {
		t.Errorf("uninstall:\n%s", out.String())
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("after uninstall:\n%s\nwant\n%s", after, before)
	}
}

// TestValidate: bad settings are one line naming the flag.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.CNIBinDir = "opt/cni" }, `--cni-bin-dir "opt/cni": want an absolute path`},
		{func(c *Config) { c.CNIConfName = "calico.json" }, `--cni-conf-name "calico.json"`},
		{func(c *Config) { c.CNIVersion = "2.0" }, `--cni-version "2.0"`},
		{func(c *Config) { c.MTU = 20 }, `--mtu 20`},
		{func(c *Config) { c.Watchdog = 1500 * time.Millisecond }, `--watchdog 1.5s`},
		{func(c *Config) { c.NodeEnv = append(c.NodeEnv, EnvVar{"1X", "y"}) }, `environment name "1X"`},
		{func(c *Config) { c.NodeEnv = append(c.NodeEnv, EnvVar{"X", "a\nb"}) }, `X: the value must be one line`},
	} {
		c := testConfig(t)
		tc.mod(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Validate = %v, want one line with %q", err, tc.want)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointing at an executable that exists (verify checks it). Any output,
// even a warning, fails.
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testutil.Unavailable(t, "systemd-analyze is not installed (Debian: systemd): %v", err)
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "calico-node")); err != nil {
		t.Fatal(err)
	}
	for _, wd := range []time.Duration{time.Minute, 0} {
		c := testConfig(t)
		c.BinDir, c.Watchdog = dir, wd
		c.RunDir = "/srv/calico/run" // a path outside /run and /var/lib: ReadWritePaths
		unit := filepath.Join(dir, UnitName)
		if err := os.WriteFile(unit, c.Unit(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", unit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify (watchdog %v): %v\n%s\nunit:\n%s", wd, err, out, c.Unit())
		}
	}
}

// TestEnvFileQuoting: values with characters systemd's EnvironmentFile
// parser treats specially round-trip through the double-quoted form.
func TestEnvFileQuoting(t *testing.T) {
	vals := []string{"plain", `interface=eth\d+`, `a "b" $c`, "x`y`", "has space", "", "semi;colon", "#hash"}
	c := testConfig(t)
	c.NodeEnv = nil
	for i, v := range vals {
		c.NodeEnv = append(c.NodeEnv, EnvVar{Name: "V" + string(rune('A'+i)), Value: v})
	}
	got, err := ParseEnvFile(c.EnvFile())
	if err != nil {
		t.Fatal(err)
	}
	got = got[len(got)-len(vals):]
	for i, v := range vals {
		if got[i].Value != v {
			t.Errorf("%q round-trips as %q", v, got[i].Value)
		}
	}
	if !strings.Contains(string(c.EnvFile()), "VB=\"interface=eth\\\\d+\"\n") {
		t.Errorf("env file:\n%s", c.EnvFile())
	}
}

// TestInstallBlockedPath: a file where a directory must be fails the
// install in planning, before anything is written, with one line.
func TestInstallBlockedPath(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/calico"), []byte("not a dir"), 0o644)
	before := snapshot(t, root)
	var out bytes.Buffer
	err := Install(testConfig(t).Plan(), opts(root, &out))
	if err == nil || !strings.Contains(err.Error(), "cannot install /etc/calico/calicoctl.cfg: not a directory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("install over a blocked path: %v", err)
	}
	if after := snapshot(t, root); after != before || out.Len() != 0 {
		t.Errorf("a failed install wrote:\n%s\n%s", after, out.String())
	}
}

// TestInstallDropsStale: files an earlier install wrote and the current
// one does not (a renamed conflist, the portmap link) are removed by the
// re-run; a stale file changed by hand is kept and left to the operator.
func TestInstallDropsStale(t *testing.T) {
	root := t.TempDir()
	before := snapshot(t, root)
	c := testConfig(t)
	c.PortmapLink = "/usr/lib/cni/portmap"
	var out bytes.Buffer
	if err := Install(c.Plan(), opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(root, "opt/cni/bin/portmap")); got != "../../../usr/lib/cni/portmap" {
		t.Errorf("portmap link -> %q", got)
	}
	os.WriteFile(filepath.Join(root, "etc/cni/net.d/10-calico.conflist"), []byte("{}"), 0o644) // a hand edit
	c.PortmapLink, c.CNIConfName = "", "20-calico.conflist"
	out.Reset()
	if err := Install(c.Plan(), opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"created   /etc/cni/net.d/20-calico.conflist\n",
		"removed   /opt/cni/bin/portmap (no longer installed)\n",
		"kept      /etc/cni/net.d/10-calico.conflist (changed by hand since calico install wrote it) (no longer installed)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("re-run lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "opt/cni/bin/portmap")); err == nil {
		t.Error("stale portmap link left")
	}
	out.Reset()
	if err := Uninstall(opts(root, &out)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "10-calico.conflist") {
		t.Errorf("uninstall still manages the stale file:\n%s", out.String())
	}
	os.Remove(filepath.Join(root, "etc/cni/net.d/10-calico.conflist"))
	for _, d := range []string{"etc/cni/net.d", "etc/cni", "etc"} {
		os.Remove(filepath.Join(root, d))
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("root after uninstall:\n%s", after)
	}
}
