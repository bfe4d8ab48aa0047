// Package cniconf parses the network configuration (netconf) the calico
// and calico-ipam CNI plugins receive on stdin, with upstream Calico's
// field names and defaults, and the CNI_ARGS they receive in the
// environment; it resolves the node name and the datastore configuration
// and builds IPAM results.
//
// Unknown fields are ignored (a netconf is shared by every plugin of a
// chain), but a known field of the wrong type is an error naming the field:
// `netconf field "mtu": expected a number, got "abc"`.
//
// It never imports the dataplane, the IPAM allocator or the datastore
// client; it only builds their configuration.
package cniconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onecalico/calico/internal/datastore/etcd"
)

// Defaults as upstream's.
const (
	DefaultNodenameFile = "/var/lib/calico/nodename"
	DefaultIPAMLockFile = "/var/run/calico/ipam.lock"
	DefaultMTUFile      = "/var/lib/calico/mtu"
	// DefaultIPAMLockTimeout is well below the runtimes' CNI timeouts
	// (CRI-O and containerd give a sandbox 4 minutes, kubelet's runtime
	// request timeout is 2) and below upstream's own 90 s lock wait, so a
	// stuck lock fails the ADD with a clear error the runtime retries.
	DefaultIPAMLockTimeout = 60 * time.Second
	// MaxNameLen bounds the network name: it names the profile and is the
	// key of the label the profile applies, and label names have at most
	// 63 characters.
	MaxNameLen = 63
	// MinMTU and MaxMTU bound "mtu" (0 = the kernel's default), as Linux
	// bounds an IPv4 link's MTU.
	MinMTU, MaxMTU = 68, 65535
)

// NetConf is a calico or calico-ipam plugin configuration.
type NetConf struct {
	// CNI basics.
	CNIVersion string
	Name       string
	Type       string

	// Datastore.
	DatastoreType  string
	EtcdEndpoints  string
	EtcdCACertFile string
	EtcdCertFile   string
	EtcdKeyFile    string

	// Node name.
	Nodename             string
	Hostname             string // deprecated "hostname": the node name after the nodename file
	NodenameFile         string // default DefaultNodenameFile
	NodenameFileOptional bool

	// Interface.
	MTU       int
	MTUFile   string // mtu_file (our extension): default DefaultMTUFile
	NumQueues int

	// Logging.
	LogLevel    string
	LogFilePath string

	IPAM              IPAM
	ContainerSettings ContainerSettings
	FeatureControl    FeatureControl
	IPAMLockFile      string // default DefaultIPAMLockFile
	// IPAMLockTimeout bounds the wait for the host IPAM lock
	// (ipam_lock_timeout_seconds, our extension): default
	// DefaultIPAMLockTimeout.
	IPAMLockTimeout time.Duration

	// PrevResult is the raw prevResult (CHECK, chained plugins).
	PrevResult json.RawMessage
	// RuntimeConfig is the raw runtimeConfig object.
	RuntimeConfig json.RawMessage
	// ValidAttachments is "cni.dev/valid-attachments" (GC, CNI 1.1).
	ValidAttachments []Attachment
	// HasValidAttachments tells an empty list from an absent one.
	HasValidAttachments bool

	// Raw is the netconf as received (passed on to the IPAM plugin).
	Raw []byte
}

// IPAM is the "ipam" section.
type IPAM struct {
	Type string
	// AssignIPv4 defaults to true, AssignIPv6 to false. Upstream writes
	// them as the strings "true"/"false"; JSON booleans are accepted too.
	AssignIPv4 bool
	AssignIPv6 bool
	IPv4Pools  []string
	IPv6Pools  []string
	Subnet     string
}

// ContainerSettings is the "container_settings" section.
type ContainerSettings struct {
	AllowIPForwarding bool
}

// FeatureControl is the "feature_control" section.
type FeatureControl struct {
	IPAddrsNoIPAM bool // ip_addrs_no_ipam
	FloatingIPs   bool // floating_ips
}

// Attachment is one entry of cni.dev/valid-attachments.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// validName reports whether s matches ^[a-zA-Z0-9_.\-]+$ (upstream's rule
// for network names), without a package-level regexp.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
		default:
			return false
		}
	}
	return true
}

// Parse decodes and checks a netconf. It applies upstream's defaults.
func Parse(data []byte) (*NetConf, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("netconf: not a JSON object: %v", err)
	}
	c := &NetConf{
		NodenameFile: DefaultNodenameFile,
		IPAMLockFile: DefaultIPAMLockFile,
		IPAM:         IPAM{AssignIPv4: true},
		Raw:          append([]byte(nil), data...),
	}
	d := decoder{prefix: ""}
	d.str(raw, "cniVersion", &c.CNIVersion)
	d.str(raw, "name", &c.Name)
	d.str(raw, "type", &c.Type)
	d.str(raw, "datastore_type", &c.DatastoreType)
	d.str(raw, "etcd_endpoints", &c.EtcdEndpoints)
	d.str(raw, "etcd_ca_cert_file", &c.EtcdCACertFile)
	d.str(raw, "etcd_cert_file", &c.EtcdCertFile)
	d.str(raw, "etcd_key_file", &c.EtcdKeyFile)
	d.str(raw, "nodename", &c.Nodename)
	d.str(raw, "hostname", &c.Hostname)
	d.str(raw, "nodename_file", &c.NodenameFile)
	d.boolean(raw, "nodename_file_optional", &c.NodenameFileOptional)
	d.integer(raw, "mtu", &c.MTU)
	d.str(raw, "mtu_file", &c.MTUFile)
	d.integer(raw, "num_queues", &c.NumQueues)
	d.str(raw, "log_level", &c.LogLevel)
	d.str(raw, "log_file_path", &c.LogFilePath)
	d.str(raw, "ipam_lock_file", &c.IPAMLockFile)
	lockSecs := -1
	d.integer(raw, "ipam_lock_timeout_seconds", &lockSecs)
	if v, ok := raw["prevResult"]; ok && !isNull(v) {
		if !isObject(v) {
			d.fail("prevResult", "an object", v)
		}
		c.PrevResult = v
	}
	if v, ok := raw["runtimeConfig"]; ok && !isNull(v) {
		if !isObject(v) {
			d.fail("runtimeConfig", "an object", v)
		}
		c.RuntimeConfig = v
	}
	if v, ok := raw["cni.dev/valid-attachments"]; ok && !isNull(v) {
		c.HasValidAttachments = true
		if err := json.Unmarshal(v, &c.ValidAttachments); err != nil {
			d.fail("cni.dev/valid-attachments", `a list of {"containerID","ifname"} objects`, v)
		}
	}
	if sub, ok := d.object(raw, "ipam"); ok {
		id := decoder{prefix: "ipam.", errs: d.errs}
		id.str(sub, "type", &c.IPAM.Type)
		id.flag(sub, "assign_ipv4", &c.IPAM.AssignIPv4)
		id.flag(sub, "assign_ipv6", &c.IPAM.AssignIPv6)
		id.strs(sub, "ipv4_pools", &c.IPAM.IPv4Pools)
		id.strs(sub, "ipv6_pools", &c.IPAM.IPv6Pools)
		id.str(sub, "subnet", &c.IPAM.Subnet)
		d.errs = id.errs
	}
	if sub, ok := d.object(raw, "container_settings"); ok {
		cd := decoder{prefix: "container_settings.", errs: d.errs}
		cd.boolean(sub, "allow_ip_forwarding", &c.ContainerSettings.AllowIPForwarding)
		d.errs = cd.errs
	}
	if sub, ok := d.object(raw, "feature_control"); ok {
		fd := decoder{prefix: "feature_control.", errs: d.errs}
		fd.boolean(sub, "ip_addrs_no_ipam", &c.FeatureControl.IPAddrsNoIPAM)
		fd.boolean(sub, "floating_ips", &c.FeatureControl.FloatingIPs)
		d.errs = fd.errs
	}
	if err := errors.Join(d.errs...); err != nil {
		return nil, err
	}
	if err := c.checkSizes(lockSecs); err != nil {
		return nil, err
	}
	switch strings.ToLower(c.DatastoreType) {
	case "", "etcdv3":
	case "kubernetes":
		return nil, errors.New(`netconf field "datastore_type": "kubernetes" is not supported; use "etcdv3" with etcd_endpoints`)
	default:
		return nil, fmt.Errorf(`netconf field "datastore_type": unknown datastore type %q (use "etcdv3")`, c.DatastoreType)
	}
	if c.NodenameFile == "" {
		c.NodenameFile = DefaultNodenameFile
	}
	if c.IPAMLockFile == "" {
		c.IPAMLockFile = DefaultIPAMLockFile
	}
	if c.MTUFile == "" {
		c.MTUFile = DefaultMTUFile
	}
	return c, nil
}

// checkSizes checks the name and the numbers before anything uses them,
// echoing at most a short prefix of a bad value.
func (c *NetConf) checkSizes(lockSecs int) error {
	switch {
	case c.Name == "":
		return errors.New(`netconf field "name": missing (the network name is required)`)
	case len(c.Name) > MaxNameLen:
		return fmt.Errorf(`netconf field "name": %s is %d bytes long, more than %d (it names the network's profile and its label)`, Quote(c.Name), len(c.Name), MaxNameLen)
	case !validName(c.Name):
		return fmt.Errorf(`netconf field "name": %s is not a valid network name (use letters, digits, "_", "." and "-")`, Quote(c.Name))
	case c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU):
		return fmt.Errorf(`netconf field "mtu": %d is out of range: give %d to %d, or leave it out for the default`, c.MTU, MinMTU, MaxMTU)
	case lockSecs == 0 || lockSecs < -1 || lockSecs > 3600:
		return fmt.Errorf(`netconf field "ipam_lock_timeout_seconds": %d is out of range: give 1 to 3600`, lockSecs)
	}
	c.IPAMLockTimeout = DefaultIPAMLockTimeout
	if lockSecs > 0 {
		c.IPAMLockTimeout = time.Duration(lockSecs) * time.Second
	}
	return nil
}

// maxEcho is how much of a bad input value an error message quotes.
const maxEcho = 64

// Quote quotes s for an error message, cut to its first 64 bytes (at a
// rune boundary) and marked as cut, so that hostile input is never
// echoed at length.
func Quote(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// decoder decodes known fields of a JSON object, collecting type errors.
type decoder struct {
	prefix string
	errs   []error
}

func (d *decoder) fail(field, want string, got json.RawMessage) {
	g := strings.TrimSpace(string(got))
	if len(g) > 40 {
		g = g[:37] + "..."
	}
	d.errs = append(d.errs, fmt.Errorf("netconf field %q: expected %s, got %s", d.prefix+field, want, g))
}

func isNull(v json.RawMessage) bool   { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }
func isObject(v json.RawMessage) bool { return bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) }

func (d *decoder) str(raw map[string]json.RawMessage, field string, dst *string) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return
	}
	if err := json.Unmarshal(v, dst); err != nil {
		d.fail(field, "a string", v)
	}
}

func (d *decoder) boolean(raw map[string]json.RawMessage, field string, dst *bool) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return
	}
	if err := json.Unmarshal(v, dst); err != nil {
		d.fail(field, "true or false", v)
	}
}

func (d *decoder) integer(raw map[string]json.RawMessage, field string, dst *int) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		d.fail(field, "a number", v)
		return
	}
	if f != float64(int(f)) {
		d.fail(field, "a whole number", v)
		return
	}
	*dst = int(f)
}

// flag decodes upstream's string booleans ("true"/"false"), also
// accepting JSON booleans.
func (d *decoder) flag(raw map[string]json.RawMessage, field string, dst *bool) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return
	}
	var b bool
	if err := json.Unmarshal(v, &b); err == nil {
		*dst = b
		return
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			*dst = true
			return
		case "false":
			*dst = false
			return
		}
	}
	d.fail(field, `"true" or "false"`, v)
}

func (d *decoder) strs(raw map[string]json.RawMessage, field string, dst *[]string) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return
	}
	if err := json.Unmarshal(v, dst); err != nil {
		d.fail(field, "a list of strings", v)
	}
}

func (d *decoder) object(raw map[string]json.RawMessage, field string) (map[string]json.RawMessage, bool) {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return nil, false
	}
	var sub map[string]json.RawMessage
	if err := json.Unmarshal(v, &sub); err != nil {
		d.fail(field, "an object", v)
		return nil, false
	}
	return sub, true
}

// NodeName resolves the node name as upstream does: the "nodename" field;
// else the nodename file (written by calico-node); else the deprecated
// "hostname" field; else, when the file is optional, the OS host name.
// readFile and hostname are os.ReadFile and os.Hostname in production.
func (c *NetConf) NodeName(readFile func(string) ([]byte, error), hostname func() (string, error)) (string, error) {
	if n := strings.TrimSpace(c.Nodename); n != "" {
		return n, nil
	}
	b, err := readFile(c.NodenameFile)
	if err == nil {
		if n := strings.TrimSpace(string(b)); n != "" {
			return n, nil
		}
		err = errors.New("the file is empty")
	}
	if n := strings.TrimSpace(c.Hostname); n != "" {
		return n, nil
	}
	if !c.NodenameFileOptional {
		return "", fmt.Errorf("read node name from %s: %v: check that calico-node is running and has written it, or set \"nodename\" (or \"nodename_file_optional\": true) in the netconf", c.NodenameFile, err)
	}
	n, herr := hostname()
	if herr != nil || strings.TrimSpace(n) == "" {
		return "", fmt.Errorf("determine node name: no \"nodename\" in the netconf, no nodename file (%v), and no OS host name (%v)", err, herr)
	}
	return strings.ToLower(strings.TrimSpace(n)), nil
}

// PodMTU resolves the MTU of a pod interface as upstream does: the
// netconf's "mtu"; else the number in the MTU file the node daemon writes
// (mtu_file); else 0, which means the kernel's default. A missing file is
// not an error; an unreadable or malformed one is.
func (c *NetConf) PodMTU(readFile func(string) ([]byte, error)) (int, error) {
	if c.MTU > 0 {
		return c.MTU, nil
	}
	b, err := readFile(c.MTUFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read pod MTU from %s: %w", c.MTUFile, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 68 || n > 65535 {
		return 0, fmt.Errorf("pod MTU file %s holds %q, not an MTU between 68 and 65535: fix or remove it, or set \"mtu\" in the netconf", c.MTUFile, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// EtcdConfig is the datastore configuration: the netconf's etcd fields,
// falling back field by field to the ETCD_* environment (getenv is
// os.Getenv in a Main).
func (c *NetConf) EtcdConfig(getenv func(string) string) (etcd.Config, error) {
	cfg := etcd.ConfigFromEnv(getenv)
	if eps := etcd.SplitEndpoints(c.EtcdEndpoints); len(eps) > 0 {
		cfg.Endpoints = eps
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&cfg.CACertFile, c.EtcdCACertFile}, {&cfg.CertFile, c.EtcdCertFile}, {&cfg.KeyFile, c.EtcdKeyFile}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, errors.New(`no datastore configured: set "etcd_endpoints" in the netconf or ETCD_ENDPOINTS in the environment`)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Args are the CNI_ARGS the Calico plugins understand.
type Args struct {
	IP                     netip.Addr // IP=<addr>: assign this address
	K8sPodNamespace        string
	K8sPodName             string
	K8sPodInfraContainerID string
	K8sPodUID              string
	IgnoreUnknown          bool
}

// ParseArgs parses CNI_ARGS ("K=V;K2=V2"). Unknown keys are an error
// unless IgnoreUnknown=1 (or true) is given, as the CNI library's LoadArgs.
func ParseArgs(s string) (Args, error) {
	var a Args
	if s == "" {
		return a, nil
	}
	var unknown []string
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return a, fmt.Errorf("CNI_ARGS: invalid pair %s (want KEY=VALUE)", Quote(pair))
		}
		switch k {
		case "IP":
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return a, fmt.Errorf("CNI_ARGS: IP=%s is not an IP address", Quote(v))
			}
			a.IP = ip.Unmap()
		case "K8S_POD_NAMESPACE":
			a.K8sPodNamespace = v
		case "K8S_POD_NAME":
			a.K8sPodName = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.K8sPodInfraContainerID = v
		case "K8S_POD_UID":
			a.K8sPodUID = v
		case "IgnoreUnknown":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return a, fmt.Errorf("CNI_ARGS: IgnoreUnknown=%s is not a boolean", Quote(v))
			}
			a.IgnoreUnknown = b
		default:
			unknown = append(unknown, pair)
		}
	}
	if len(unknown) > 0 && !a.IgnoreUnknown {
		return a, fmt.Errorf("CNI_ARGS: unknown args %s (add IgnoreUnknown=1 to ignore them)", Quote(strings.Join(unknown, ";")))
	}
	return a, nil
}

// PrevResultAddrs returns the addresses of prevResult (any result
// version: every one since 0.3.0 has "ips":[{"address":...}]).
func (c *NetConf) PrevResultAddrs() ([]netip.Prefix, error) {
	if len(c.PrevResult) == 0 {
		return nil, errors.New("netconf has no prevResult")
	}
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(c.PrevResult, &r); err != nil {
		return nil, fmt.Errorf(`netconf field "prevResult": %v`, err)
	}
	out := make([]netip.Prefix, 0, len(r.IPs))
	for _, ip := range r.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			return nil, fmt.Errorf(`netconf field "prevResult.ips": bad address %q`, ip.Address)
		}
		out = append(out, p)
	}
	return out, nil
}
