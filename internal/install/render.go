// Package install makes a host a Calico node from the one binary: it
// renders the files a node needs (the binary and its applet links, the CNI
// plugin links, the CNI conflist, calicoctl.cfg, the daemon's environment
// file and a systemd unit) and installs or uninstalls them under a root
// directory, keeping a manifest of what it wrote so that re-runs change
// nothing and an uninstall removes exactly that, never a file an operator
// changed by hand.
//
// Rendering (Plan) is pure. Installing (Install, Uninstall) touches only
// the paths of the plan, their new parent directories, the manifest and its
// backup directory under Root. It never runs other programs (no systemctl)
// and imports nothing from this module.
package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Names of the installed files.
const (
	UnitName        = "calico-node.service"
	EnvFileName     = "calico-node.env"
	CalicoctlConfig = "calicoctl.cfg"
)

// Config is everything the rendered files depend on. Paths are absolute
// paths on the target system (Install puts them under its Root).
type Config struct {
	Source string // the calico binary to copy (a host path, not under Root)

	BinDir      string // calico, calico-node, calicoctl
	CNIBinDir   string // calico, calico-ipam links
	CNIConfDir  string // the conflist
	CNIConfName string // e.g. 10-calico.conflist
	ConfigDir   string // calicoctl.cfg and calico-node.env
	UnitDir     string // calico-node.service

	NetworkName string
	CNIVersion  string
	MTU         int    // 0: the pod MTU comes from the daemon's MTU file
	Portmap     bool   // chain the portmap plugin after calico
	PortmapLink string // if set, link CNIBinDir/portmap to this plugin (e.g. Debian's /usr/lib/cni/portmap)
	CNILogLevel string // "" = the plugin's default
	CNILogFile  string // "" = stderr (the runtime's log)

	Etcd Etcd

	// Files the daemon writes and the CNI plugin reads.
	NodenameFile, MTUFile, RunDir, IPAMLockFile string

	// NodeEnv are further calico-node settings (NODENAME, IP, AS,
	// CALICO_NETWORKING_BACKEND, FELIX_*, ...), in order.
	NodeEnv []EnvVar

	Watchdog time.Duration // WatchdogSec; 0 = none
}

// Etcd is the datastore every role uses.
type Etcd struct {
	Endpoints                     []string
	CACertFile, CertFile, KeyFile string
	Username, Password            string
}

// EnvVar is one NAME=VALUE of the daemon's environment file.
type EnvVar struct{ Name, Value string }

// Kind is the type of an installed path.
type Kind string

// Kinds.
const (
	KindFile    Kind = "file"
	KindSymlink Kind = "symlink"
)

// Item is one path to install.
type Item struct {
	Path   string // absolute, on the target system
	Kind   Kind
	Mode   uint32 // permission bits of a file
	Data   []byte // a file's content, or
	Source string // a host file to copy (the binary)
	Target string // a symlink's target
	// Redact are line prefixes (a secret's key) after which a dry run
	// prints <redacted>.
	Redact []string
}

// Validate checks the configuration; errors are one line naming the flag.
func (c *Config) Validate() error {
	for _, p := range []struct{ flag, path string }{
		{"--bin-dir", c.BinDir}, {"--cni-bin-dir", c.CNIBinDir}, {"--cni-conf-dir", c.CNIConfDir},
		{"--config-dir", c.ConfigDir}, {"--unit-dir", c.UnitDir}, {"--nodename-file", c.NodenameFile},
		{"--mtu-file", c.MTUFile}, {"--run-dir", c.RunDir}, {"--ipam-lock-file", c.IPAMLockFile},
	} {
		if !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s %q: want an absolute path", p.flag, p.path)
		}
	}
	if c.CNILogFile != "" && !filepath.IsAbs(c.CNILogFile) {
		return fmt.Errorf("--cni-log-file %q: want an absolute path", c.CNILogFile)
	}
	name := c.CNIConfName
	if name == "" || strings.ContainsRune(name, '/') || !(strings.HasSuffix(name, ".conflist")) {
		return fmt.Errorf("--cni-conf-name %q: want a file name ending in .conflist", name)
	}
	if c.NetworkName == "" || strings.ContainsAny(c.NetworkName, " /\"\\") {
		return fmt.Errorf("--network-name %q: want letters, digits, \"_\", \".\" and \"-\"", c.NetworkName)
	}
	switch c.CNIVersion {
	case "0.3.1", "0.4.0", "1.0.0", "1.1.0":
	default:
		return fmt.Errorf("--cni-version %q: want 0.3.1, 0.4.0, 1.0.0 or 1.1.0", c.CNIVersion)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf("--mtu %d: want 0 (from the daemon) or 68..65535", c.MTU)
	}
	if c.Watchdog < 0 || c.Watchdog%time.Second != 0 {
		return fmt.Errorf("--watchdog %v: want whole seconds, 0 = off", c.Watchdog)
	}
	for _, v := range append(c.NodeEnv, EnvVar{"ETCD_PASSWORD", c.Etcd.Password}) {
		if !validEnvName(v.Name) {
			return fmt.Errorf("environment name %q: want letters, digits and _ (not starting with a digit)", v.Name)
		}
		if strings.ContainsAny(v.Value, "\n\r\x00") {
			return fmt.Errorf("%s: the value must be one line", v.Name)
		}
	}
	return nil
}

func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Plan returns the items to install, in order: the binary first, the unit
// last (so a service manager never sees a unit whose binary is missing).
func (c *Config) Plan() []Item {
	bin := filepath.Join(c.BinDir, "calico")
	rel := func(dir, to string) string {
		r, err := filepath.Rel(dir, to)
		if err != nil {
			return to
		}
		return r
	}
	items := []Item{
		{Path: bin, Kind: KindFile, Mode: 0o755, Source: c.Source},
		{Path: filepath.Join(c.BinDir, "calico-node"), Kind: KindSymlink, Target: "calico"},
		{Path: filepath.Join(c.BinDir, "calicoctl"), Kind: KindSymlink, Target: "calico"},
		// Relative links work inside a root directory and chroots too.
		{Path: filepath.Join(c.CNIBinDir, "calico"), Kind: KindSymlink, Target: rel(c.CNIBinDir, bin)},
		{Path: filepath.Join(c.CNIBinDir, "calico-ipam"), Kind: KindSymlink, Target: rel(c.CNIBinDir, bin)},
	}
	if c.PortmapLink != "" {
		items = append(items, Item{Path: filepath.Join(c.CNIBinDir, "portmap"), Kind: KindSymlink, Target: rel(c.CNIBinDir, c.PortmapLink)})
	}
	items = append(items, []Item{
		{Path: filepath.Join(c.CNIConfDir, c.CNIConfName), Kind: KindFile, Mode: 0o644, Data: c.Conflist()},
		{Path: filepath.Join(c.ConfigDir, CalicoctlConfig), Kind: KindFile, Mode: secretMode(c.Etcd.Password), Data: c.CalicoctlConfig(), Redact: []string{"  etcdPassword: "}},
		{Path: filepath.Join(c.ConfigDir, EnvFileName), Kind: KindFile, Mode: 0o600, Data: c.EnvFile(), Redact: []string{"ETCD_PASSWORD="}},
		{Path: filepath.Join(c.UnitDir, UnitName), Kind: KindFile, Mode: 0o644, Data: c.Unit()},
	}...)
	return items
}

func secretMode(password string) uint32 {
	if password != "" {
		return 0o600
	}
	return 0o644
}

// calicoPlugin is the calico entry of the conflist, fields in upstream's
// order and names.
type calicoPlugin struct {
	Type              string            `json:"type"`
	DatastoreType     string            `json:"datastore_type"`
	EtcdEndpoints     string            `json:"etcd_endpoints"`
	EtcdCACertFile    string            `json:"etcd_ca_cert_file,omitempty"`
	EtcdCertFile      string            `json:"etcd_cert_file,omitempty"`
	EtcdKeyFile       string            `json:"etcd_key_file,omitempty"`
	NodenameFile      string            `json:"nodename_file"`
	MTU               int               `json:"mtu,omitempty"`
	MTUFile           string            `json:"mtu_file"`
	IPAMLockFile      string            `json:"ipam_lock_file"`
	LogLevel          string            `json:"log_level,omitempty"`
	LogFilePath       string            `json:"log_file_path,omitempty"`
	IPAM              map[string]string `json:"ipam"`
	ContainerSettings map[string]bool   `json:"container_settings"`
}

type portmapPlugin struct {
	Type         string          `json:"type"`
	SNAT         bool            `json:"snat"`
	Capabilities map[string]bool `json:"capabilities"`
}

// Conflist is the CNI network configuration list: calico (with calico-ipam
// and the datastore settings as netconf fields), then portmap.
func (c *Config) Conflist() []byte {
	plugins := []any{calicoPlugin{
		Type: "calico", DatastoreType: "etcdv3", EtcdEndpoints: strings.Join(c.Etcd.Endpoints, ","),
		EtcdCACertFile: c.Etcd.CACertFile, EtcdCertFile: c.Etcd.CertFile, EtcdKeyFile: c.Etcd.KeyFile,
		NodenameFile: c.NodenameFile, MTU: c.MTU, MTUFile: c.MTUFile, IPAMLockFile: c.IPAMLockFile,
		LogLevel: c.CNILogLevel, LogFilePath: c.CNILogFile,
		IPAM:              map[string]string{"type": "calico-ipam"},
		ContainerSettings: map[string]bool{"allow_ip_forwarding": false},
	}}
	if c.Portmap {
		plugins = append(plugins, portmapPlugin{Type: "portmap", SNAT: true, Capabilities: map[string]bool{"portMappings": true}})
	}
	list := struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
		Plugins    []any  `json:"plugins"`
	}{c.NetworkName, c.CNIVersion, plugins}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(list); err != nil {
		panic(err) // plain values only
	}
	return b.Bytes()
}

// yamlString quotes s for YAML: a JSON string is a YAML double-quoted scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// CalicoctlConfig is /etc/calico/calicoctl.cfg: a CalicoAPIConfig, as
// upstream calicoctl reads it.
func (c *Config) CalicoctlConfig() []byte {
	var b strings.Builder
	b.WriteString("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  datastoreType: etcdv3\n")
	fmt.Fprintf(&b, "  etcdEndpoints: %s\n", yamlString(strings.Join(c.Etcd.Endpoints, ",")))
	for _, f := range []struct{ key, v string }{
		{"etcdCACertFile", c.Etcd.CACertFile}, {"etcdCertFile", c.Etcd.CertFile}, {"etcdKeyFile", c.Etcd.KeyFile},
		{"etcdUsername", c.Etcd.Username}, {"etcdPassword", c.Etcd.Password},
	} {
		if f.v != "" {
			fmt.Fprintf(&b, "  %s: %s\n", f.key, yamlString(f.v))
		}
	}
	return []byte(b.String())
}

// envValue quotes a value for a systemd EnvironmentFile when it needs it:
// inside double quotes a backslash escapes ", \, ` and $ (and only those).
func envValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"'\\$`#;") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return `"` + r.Replace(v) + `"`
}

// EnvFile is the daemon's environment (EnvironmentFile of the unit).
func (c *Config) EnvFile() []byte {
	var b strings.Builder
	b.WriteString("# calico-node settings (EnvironmentFile of " + UnitName + "), written by calico install.\n")
	b.WriteString("# calico install keeps hand edits here; `calico-node --help` lists every setting.\n")
	vars := []EnvVar{{"DATASTORE_TYPE", "etcdv3"}, {"ETCD_ENDPOINTS", strings.Join(c.Etcd.Endpoints, ",")}}
	for _, v := range []EnvVar{
		{"ETCD_CA_CERT_FILE", c.Etcd.CACertFile}, {"ETCD_CERT_FILE", c.Etcd.CertFile}, {"ETCD_KEY_FILE", c.Etcd.KeyFile},
		{"ETCD_USERNAME", c.Etcd.Username}, {"ETCD_PASSWORD", c.Etcd.Password},
	} {
		if v.Value != "" {
			vars = append(vars, v)
		}
	}
	vars = append(vars, EnvVar{"CALICO_NODENAME_FILE", c.NodenameFile}, EnvVar{"CALICO_MTU_FILE", c.MTUFile}, EnvVar{"CALICO_RUN_DIR", c.RunDir})
	for _, v := range append(vars, c.NodeEnv...) {
		fmt.Fprintf(&b, "%s=%s\n", v.Name, envValue(v.Value))
	}
	return []byte(b.String())
}

// ParseEnvFile reads what EnvFile writes (NAME=VALUE lines, # comments,
// the double-quoted form of envValue), for tests and tools.
func ParseEnvFile(data []byte) ([]EnvVar, error) {
	var out []EnvVar
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		name, v, ok := strings.Cut(line, "=")
		if !ok || !validEnvName(name) {
			return nil, fmt.Errorf("line %d: not NAME=VALUE: %q", i+1, line)
		}
		if strings.HasPrefix(v, `"`) {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) {
				return nil, fmt.Errorf("line %d: unterminated quote", i+1)
			}
			var b strings.Builder
			inner := v[1 : len(v)-1]
			for j := 0; j < len(inner); j++ {
				if inner[j] == '\\' && j+1 < len(inner) && strings.IndexByte("\"\\`$", inner[j+1]) >= 0 {
					j++
				}
				b.WriteByte(inner[j])
			}
			v = b.String()
		}
		out = append(out, EnvVar{name, v})
	}
	return out, nil
}

// Unit is the systemd unit of calico-node.
func (c *Config) Unit() []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by calico install. The node daemon: routes, VXLAN, NAT and policy for pods.")
	w("[Unit]")
	w("Description=Calico node daemon (calico-node)")
	w("Documentation=https://github.com/onecalico/calico")
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("# Keep restarting while the datastore is away: the daemon retries by itself.")
	w("StartLimitIntervalSec=0")
	w("")
	w("[Service]")
	w("# calico-node sends READY=1 after its first complete dataplane apply,")
	w("# STATUS= lines, WATCHDOG=1 while live, and STOPPING=1 (sd_notify).")
	w("Type=notify")
	w("NotifyAccess=main")
	w("EnvironmentFile=%s", filepath.Join(c.ConfigDir, EnvFileName))
	w("ExecStart=%s", filepath.Join(c.BinDir, "calico-node"))
	w("Restart=on-failure")
	w("RestartSec=5s")
	w("TimeoutStartSec=300s")
	if c.Watchdog > 0 {
		w("WatchdogSec=%ds", int(c.Watchdog/time.Second))
	}
	w("# Stopping leaves routes, devices and rules in place; pods keep working.")
	w("KillMode=mixed")
	w("")
	w("# Privileges: routes, links, nftables and sysctls (NET_ADMIN), raw")
	w("# sockets (NET_RAW), network namespaces (SYS_ADMIN), BGP port 179.")
	w("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_NET_BIND_SERVICE")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	for _, l := range c.writablePaths() {
		w("%s", l)
	}
	w("ProtectHome=yes")
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("RestrictNamespaces=net")
	w("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	w("MemoryDenyWriteExecute=yes")
	w("SystemCallArchitectures=native")
	w("SystemCallFilter=@system-service")
	w("SystemCallErrorNumber=EPERM")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return []byte(b.String())
}

// writablePaths are the unit lines that let the daemon write its files
// under ProtectSystem=strict: StateDirectory= for /var/lib/X,
// RuntimeDirectory= for /run/X (kept across restarts: the CNI plugin's
// lock lives there too), ReadWritePaths= for anything else.
func (c *Config) writablePaths() []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{filepath.Dir(c.NodenameFile), filepath.Dir(c.MTUFile), c.RunDir} {
		dir = filepath.Clean(dir)
		var line string
		switch {
		case strings.HasPrefix(dir, "/var/lib/"):
			line = "StateDirectory=" + strings.TrimPrefix(dir, "/var/lib/")
		case strings.HasPrefix(dir, "/run/"), strings.HasPrefix(dir, "/var/run/"):
			d := strings.TrimPrefix(strings.TrimPrefix(dir, "/var"), "/run/")
			line = "RuntimeDirectory=" + d + "\nRuntimeDirectoryPreserve=yes"
		default:
			line = "ReadWritePaths=-" + dir
		}
		if !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	return out
}

// ErrNothingInstalled is returned by Uninstall when there is no manifest.
var ErrNothingInstalled = errors.New("nothing installed")
