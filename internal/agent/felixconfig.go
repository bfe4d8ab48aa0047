package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FelixConfiguration resource names: the global object and the per-node one.
const (
	FelixConfigGlobal     = "default"
	FelixConfigNodePrefix = "node."
)

// felixSpec is the subset of FelixConfiguration.spec the daemon uses, in
// upstream's JSON names. Every field is a pointer so that a layer (global,
// per node, environment) only overrides what it sets. It is read from raw
// JSON: the full FelixConfiguration kind lives in internal/api.
type felixSpec struct {
	VXLANEnabled                *bool   `json:"vxlanEnabled,omitempty"`
	VXLANVNI                    *int    `json:"vxlanVNI,omitempty"`
	VXLANPort                   *int    `json:"vxlanPort,omitempty"`
	VXLANMTU                    *int    `json:"vxlanMTU,omitempty"`
	IPIPEnabled                 *bool   `json:"ipipEnabled,omitempty"`
	IPIPMTU                     *int    `json:"ipipMTU,omitempty"`
	MTUIfacePattern             *string `json:"mtuIfacePattern,omitempty"`
	NATOutgoingAddress          *string `json:"natOutgoingAddress,omitempty"`
	NATPortRange                *string `json:"natPortRange,omitempty"`
	IPForwarding                *string `json:"ipForwarding,omitempty"`
	InterfacePrefix             *string `json:"interfacePrefix,omitempty"`
	RouteRefreshInterval        *string `json:"routeRefreshInterval,omitempty"`
	HealthEnabled               *bool   `json:"healthEnabled,omitempty"`
	HealthHost                  *string `json:"healthHost,omitempty"`
	HealthPort                  *int    `json:"healthPort,omitempty"`
	PrometheusMetricsEnabled    *bool   `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost       *string `json:"prometheusMetricsHost,omitempty"`
	PrometheusMetricsPort       *int    `json:"prometheusMetricsPort,omitempty"`
	LogSeverityScreen           *string `json:"logSeverityScreen,omitempty"`
	DefaultEndpointToHostAction *string `json:"defaultEndpointToHostAction,omitempty"`
	ReportingInterval           *string `json:"reportingInterval,omitempty"`
}

// felixAliases maps upstream Felix environment names that differ from the
// upper-cased JSON field name to the JSON field name.
var felixAliases = map[string]string{
	"ipinipenabled": "ipipEnabled",
	"ipinipmtu":     "ipipMTU",
}

// felixField finds the felixSpec field for a lower-cased name (the JSON
// name lower-cased, or an alias). ok is false for unknown names.
func felixField(lower string) (reflect.StructField, bool) {
	if a, ok := felixAliases[lower]; ok {
		lower = strings.ToLower(a)
	}
	t := reflect.TypeFor[felixSpec]()
	for i := range t.NumField() {
		f := t.Field(i)
		if strings.ToLower(jsonName(f)) == lower {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// decodeFelixSpec reads the spec of a stored FelixConfiguration. Fields that
// have the wrong JSON type are an error naming the resource.
func decodeFelixSpec(name string, value []byte) (felixSpec, error) {
	var raw struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return felixSpec{}, fmt.Errorf("decode FelixConfiguration %s: %w", name, err)
	}
	if len(raw.Spec) == 0 {
		return felixSpec{}, nil
	}
	// Fields are decoded one by one so that natPortRange (a number or a
	// string) and durations written as strings are accepted in either form.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw.Spec, &fields); err != nil {
		return felixSpec{}, fmt.Errorf("decode FelixConfiguration %s spec: %w", name, err)
	}
	var s felixSpec
	v := reflect.ValueOf(&s).Elem()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := felixField(strings.ToLower(k))
		if !ok || jsonName(f) != k {
			continue // a field this daemon does not use
		}
		fv := v.FieldByIndex(f.Index)
		val := reflect.New(f.Type.Elem())
		b := fields[k]
		if f.Type.Elem().Kind() == reflect.String && len(b) > 0 && b[0] != '"' {
			// numorstring fields such as natPortRange may be numbers.
			val.Elem().SetString(string(b))
		} else if err := json.Unmarshal(b, val.Interface()); err != nil {
			return felixSpec{}, fmt.Errorf("FelixConfiguration %s: spec.%s: %s is not a %s", name, k, b, f.Type.Elem().Kind())
		}
		fv.Set(val)
	}
	return s, nil
}

// overlay returns base with every field set in top replacing base's.
func overlay(base, top felixSpec) felixSpec {
	out := base
	ov, tv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(top)
	for i := range tv.NumField() {
		if !tv.Field(i).IsNil() {
			ov.Field(i).Set(tv.Field(i))
		}
	}
	return out
}

// parseFelixOverrides turns FELIX_<FIELD> settings (keys already without
// the prefix, any case) into a felixSpec layer. Unknown names are returned
// separately so the caller can warn about them: Felix has many settings this
// daemon does not implement. Values of known names must parse.
func parseFelixOverrides(env map[string]string) (felixSpec, []string, error) {
	var s felixSpec
	var unknown []string
	v := reflect.ValueOf(&s).Elem()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := strings.TrimSpace(env[k])
		f, ok := felixField(strings.ToLower(k))
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		envName := "FELIX_" + strings.ToUpper(k)
		val := reflect.New(f.Type.Elem())
		switch f.Type.Elem().Kind() {
		case reflect.Bool:
			b, err := parseBool(raw)
			if err != nil {
				return s, nil, fmt.Errorf("%s=%q: want true or false", envName, raw)
			}
			val.Elem().SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				return s, nil, fmt.Errorf("%s=%q: want an integer", envName, raw)
			}
			val.Elem().SetInt(int64(n))
		default:
			val.Elem().SetString(raw)
		}
		v.FieldByIndex(f.Index).Set(val)
	}
	return s, unknown, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "y", "t", "on", "enabled":
		return true, nil
	case "false", "0", "no", "n", "f", "off", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// DefaultMTUIfacePattern is Felix's default MTUIfacePattern.
const DefaultMTUIfacePattern = `^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)`

// FelixConfig is the resolved FelixConfiguration the dataplane uses:
// defaults, then the global object, then node.<name>, then FELIX_* overrides.
type FelixConfig struct {
	VXLANEnabled         *bool // nil: on when a VXLAN pool exists
	VXLANVNI             int
	VXLANPort            int
	VXLANMTU             int // 0: host MTU - 50
	IPIPEnabled          *bool
	IPIPMTU              int // 0: host MTU - 20
	MTUIfacePattern      *regexp.Regexp
	NATOutgoingAddress   netip.Addr
	NATPortRange         string
	IPForwarding         bool
	InterfacePrefix      string
	RouteRefreshInterval time.Duration
	HealthEnabled        bool
	HealthHost           string
	HealthPort           int
	MetricsEnabled       bool
	MetricsHost          string
	MetricsPort          int
	LogSeverityScreen    string
}

// equalFelix compares two resolved configs (the regexp by its source).
func equalFelix(a, b FelixConfig) bool {
	pa, pb := a.MTUIfacePattern, b.MTUIfacePattern
	a.MTUIfacePattern, b.MTUIfacePattern = nil, nil
	if !reflect.DeepEqual(a, b) {
		return false
	}
	return (pa == nil) == (pb == nil) && (pa == nil || pa.String() == pb.String())
}

// resolveFelix applies Felix's defaults and checks values. Errors name the
// field; the caller reports them and keeps the last good config.
func resolveFelix(s felixSpec) (FelixConfig, error) {
	c := FelixConfig{
		VXLANEnabled:         s.VXLANEnabled,
		VXLANVNI:             4096,
		VXLANPort:            4789,
		IPIPEnabled:          s.IPIPEnabled,
		IPForwarding:         true,
		InterfacePrefix:      "cali",
		RouteRefreshInterval: 90 * time.Second,
		HealthEnabled:        true,
		HealthHost:           "localhost",
		HealthPort:           9099,
		MetricsEnabled:       true,
		MetricsPort:          9091,
		LogSeverityScreen:    "Info",
	}
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	setInt := func(dst *int, v *int, name string, lo, hi int) {
		if v == nil {
			return
		}
		if *v < lo || *v > hi {
			bad("%s %d is out of range %d-%d", name, *v, lo, hi)
			return
		}
		*dst = *v
	}
	setInt(&c.VXLANVNI, s.VXLANVNI, "vxlanVNI", 1, 1<<24-1)
	setInt(&c.VXLANPort, s.VXLANPort, "vxlanPort", 1, 65535)
	setInt(&c.VXLANMTU, s.VXLANMTU, "vxlanMTU", 0, 65535)
	setInt(&c.IPIPMTU, s.IPIPMTU, "ipipMTU", 0, 65535)
	setInt(&c.HealthPort, s.HealthPort, "healthPort", 0, 65535)
	setInt(&c.MetricsPort, s.PrometheusMetricsPort, "prometheusMetricsPort", 0, 65535)
	pattern := DefaultMTUIfacePattern
	if s.MTUIfacePattern != nil && *s.MTUIfacePattern != "" {
		pattern = *s.MTUIfacePattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		bad("mtuIfacePattern %q is not a valid regular expression: %v", pattern, err)
		re = regexp.MustCompile(DefaultMTUIfacePattern)
	}
	c.MTUIfacePattern = re
	if s.NATOutgoingAddress != nil && *s.NATOutgoingAddress != "" {
		a, err := netip.ParseAddr(*s.NATOutgoingAddress)
		if err != nil || !a.Is4() {
			bad("natOutgoingAddress %q is not an IPv4 address", *s.NATOutgoingAddress)
		} else {
			c.NATOutgoingAddress = a
		}
	}
	if s.NATPortRange != nil && *s.NATPortRange != "" {
		lo, hi, ok := strings.Cut(*s.NATPortRange, ":")
		if !ok {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
			bad("natPortRange %q: want min:max within 1-65535", *s.NATPortRange)
		} else {
			c.NATPortRange = *s.NATPortRange
		}
	}
	if s.IPForwarding != nil {
		switch *s.IPForwarding {
		case "Enabled", "":
			c.IPForwarding = true
		case "Disabled":
			c.IPForwarding = false
		default:
			bad("ipForwarding %q: want Enabled or Disabled", *s.IPForwarding)
		}
	}
	if s.InterfacePrefix != nil && *s.InterfacePrefix != "" {
		// Upstream allows a comma-separated list; the first is the one
		// the CNI plugin uses.
		c.InterfacePrefix = *s.InterfacePrefix
	}
	if s.RouteRefreshInterval != nil && *s.RouteRefreshInterval != "" {
		d, err := parseDuration(*s.RouteRefreshInterval)
		if err != nil || d < 0 {
			bad("routeRefreshInterval %q: want a duration such as 90s", *s.RouteRefreshInterval)
		} else if d > 0 {
			c.RouteRefreshInterval = d
		} else {
			c.RouteRefreshInterval = 0 // 0 disables the periodic resync
		}
	}
	if s.HealthEnabled != nil {
		c.HealthEnabled = *s.HealthEnabled
	}
	if s.HealthHost != nil {
		c.HealthHost = *s.HealthHost
	}
	if s.PrometheusMetricsEnabled != nil {
		c.MetricsEnabled = *s.PrometheusMetricsEnabled
	}
	if s.PrometheusMetricsHost != nil {
		c.MetricsHost = *s.PrometheusMetricsHost
	}
	if s.LogSeverityScreen != nil && *s.LogSeverityScreen != "" {
		if _, err := parseLevel(*s.LogSeverityScreen); err != nil {
			bad("logSeverityScreen %q: %v", *s.LogSeverityScreen, err)
		} else {
			c.LogSeverityScreen = *s.LogSeverityScreen
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("felix configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// parseDuration accepts Go durations ("90s") and bare seconds ("90"), as
// Felix's environment does.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}
