package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// FelixConfiguration resource names: the global object and the per-node one.
const (
	FelixConfigGlobal     = api.GlobalConfigName
	FelixConfigNodePrefix = api.NodeConfigPrefix
)

// felixLayers are the FelixConfiguration layers below the environment.
type felixLayers struct{ global, node api.FelixConfigurationSpec }

// decodeFelix reads the spec of a stored FelixConfiguration. A field of the
// wrong JSON type is an error naming the resource and the field.
func decodeFelix(name string, item *kv.KV) (api.FelixConfigurationSpec, error) {
	r, err := datastore.Decode(mustKind(api.KindFelixConfiguration), item)
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return api.FelixConfigurationSpec{}, fmt.Errorf("FelixConfiguration %s: %s: a JSON %s is not a %s", name, te.Field, te.Value, te.Type)
		}
		return api.FelixConfigurationSpec{}, fmt.Errorf("FelixConfiguration %s: %w", name, err)
	}
	return r.(*api.FelixConfiguration).Spec, nil
}

// overlayFelix returns base with every field that top sets replacing
// base's. A field is set when it is a non-nil pointer, a non-empty string,
// slice or map, or any other non-zero value.
func overlayFelix(base, top api.FelixConfigurationSpec) api.FelixConfigurationSpec {
	out := base
	ov, tv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(top)
	for i := range tv.NumField() {
		f := tv.Field(i)
		var set bool
		switch f.Kind() {
		case reflect.Pointer, reflect.Interface:
			set = !f.IsNil()
		case reflect.String, reflect.Slice, reflect.Map:
			set = f.Len() > 0
		default:
			set = !f.IsZero()
		}
		if set {
			ov.Field(i).Set(f)
		}
	}
	return out
}

// felixEnvLayer turns FELIX_<NAME> settings (keys without the prefix, any
// case) into a spec layer with api's parser: NAME is a field's JSON name,
// Go name or Felix parameter name (FELIX_IPINIPMTU). Names api does not
// know are returned sorted for the caller to report, not failed: Felix has
// many settings (its bootstrap parameters among them) this daemon does not
// implement. A bad value of a known name is an error naming the variable.
func felixEnvLayer(env map[string]string) (api.FelixConfigurationSpec, []string, error) {
	var s api.FelixConfigurationSpec
	field := map[string]string{} // FELIX_<NAME> -> JSON field name
	for f, names := range api.FelixEnvNames() {
		for _, n := range names {
			field[n] = f
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := map[string]string{} // FELIX_<NAME> -> value
	var unknown []string
	var errs []error
	for _, k := range keys {
		name := api.FelixEnvPrefix + strings.ToUpper(k)
		f, ok := field[name]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		known[name] = env[k]
		// Each value is parsed alone first so that a bad one is reported
		// in terms of what the field wants.
		var probe api.FelixConfigurationSpec
		if err := probe.Set(name, env[k]); err != nil {
			errs = append(errs, felixValueError(name, env[k], f, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, unknown, err
	}
	// ApplyOverrides also refuses two names of one field set differently
	// (FELIX_IPIPMTU and FELIX_IPINIPMTU).
	if err := s.ApplyOverrides(func(n string) (string, bool) { v, ok := known[n]; return v, ok }); err != nil {
		return s, unknown, err
	}
	return s, unknown, nil
}

// felixValueError words a bad FELIX_* value by what the field wants.
func felixValueError(name, value, jsonField string, err error) error {
	want := ""
	t := reflect.TypeFor[api.FelixConfigurationSpec]()
	for i := range t.NumField() {
		sf := t.Field(i)
		if n, _, _ := strings.Cut(sf.Tag.Get("json"), ","); n != jsonField {
			continue
		}
		ft := sf.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeFor[api.Duration]():
			want = "want a duration such as 90s"
		case ft.Kind() == reflect.Bool:
			want = "want true or false"
		case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
			want = "want an integer"
		}
		break
	}
	if want == "" {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		want = err.Error()
	}
	return fmt.Errorf("%s=%q: %s", name, strings.TrimSpace(value), want)
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
	VXLANMTUV6           int // 0: host MTU - 70
	IPv6Support          bool
	IPIPEnabled          *bool
	IPIPMTU              int // 0: host MTU - 20
	MTUIfacePattern      *regexp.Regexp
	NATOutgoingAddress   netip.Addr
	NATPortRange         string // "min:max" as configured, for display
	NATPortMin           uint16 // natPortRange; 0: not set
	NATPortMax           uint16
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
func resolveFelix(s api.FelixConfigurationSpec) (FelixConfig, error) {
	c := FelixConfig{
		VXLANEnabled:         s.VXLANEnabled,
		VXLANVNI:             4096,
		VXLANPort:            4789,
		IPIPEnabled:          s.IPIPEnabled,
		IPForwarding:         true,
		IPv6Support:          s.IPv6Support == nil || *s.IPv6Support,
		InterfacePrefix:      "cali",
		RouteRefreshInterval: 90 * time.Second,
		HealthEnabled:        true,
		HealthHost:           "localhost",
		HealthPort:           9099,
		MetricsEnabled:       false, // as upstream: prometheusMetricsEnabled defaults to off
		MetricsHost:          s.PrometheusMetricsHost,
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
	setInt(&c.VXLANMTUV6, s.VXLANMTUV6, "vxlanMTUV6", 0, 65535)
	setInt(&c.IPIPMTU, s.IPIPMTU, "ipipMTU", 0, 65535)
	setInt(&c.HealthPort, s.HealthPort, "healthPort", 0, 65535)
	setInt(&c.MetricsPort, s.PrometheusMetricsPort, "prometheusMetricsPort", 0, 65535)
	pattern := DefaultMTUIfacePattern
	if s.MTUIfacePattern != "" {
		pattern = s.MTUIfacePattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		bad("mtuIfacePattern %q is not a valid regular expression: %v", pattern, err)
		re = regexp.MustCompile(DefaultMTUIfacePattern)
	}
	c.MTUIfacePattern = re
	if s.NATOutgoingAddress != "" {
		a, err := netip.ParseAddr(s.NATOutgoingAddress)
		if err != nil || !a.Is4() {
			bad("natOutgoingAddress %q is not an IPv4 address", s.NATOutgoingAddress)
		} else {
			c.NATOutgoingAddress = a
		}
	}
	if p := s.NATPortRange; p != nil {
		if p.PortName != "" || p.MinPort < 1 || p.MinPort > p.MaxPort {
			bad("natPortRange %q: want min:max within 1-65535", p.String())
		} else {
			c.NATPortRange = p.String()
			c.NATPortMin, c.NATPortMax = p.MinPort, p.MaxPort
		}
	}
	switch s.IPForwarding {
	case "Enabled", "":
		c.IPForwarding = true
	case "Disabled":
		c.IPForwarding = false
	default:
		bad("ipForwarding %q: want Enabled or Disabled", s.IPForwarding)
	}
	if s.InterfacePrefix != "" {
		// Upstream allows a comma-separated list; the first is the one
		// the CNI plugin uses.
		c.InterfacePrefix = s.InterfacePrefix
	}
	if d := s.RouteRefreshInterval; d != nil {
		if d.Duration < 0 {
			bad("routeRefreshInterval %q: want a duration such as 90s", d.Duration.String())
		} else {
			c.RouteRefreshInterval = d.Duration // 0 disables the periodic resync
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
	if s.LogSeverityScreen != "" {
		if _, err := parseLevel(s.LogSeverityScreen); err != nil {
			bad("logSeverityScreen %q: %v", s.LogSeverityScreen, err)
		} else {
			c.LogSeverityScreen = s.LogSeverityScreen
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("felix configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}
