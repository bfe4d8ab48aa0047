package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FelixEnvPrefix starts every environment variable that overrides a
// FelixConfiguration field (FELIX_VXLANENABLED=true).
const FelixEnvPrefix = "FELIX_"

// felixParam is one overridable field and the names that reach it.
type felixParam struct {
	index int
	names []string // upper case, without FELIX_
	ms    bool     // a bare number means milliseconds, not seconds
}

// felixParams lists the fields of FelixConfigurationSpec that Felix reads
// from its environment, with every name each answers to: the JSON name, the
// Go field name and Felix's own parameter name (confignamev1), all upper
// case. It is built from the struct tags on each call; nothing is cached at
// package level.
func felixParams() ([]felixParam, map[string]int) {
	t := reflect.TypeFor[FelixConfigurationSpec]()
	params := make([]felixParam, 0, t.NumField())
	byName := make(map[string]int, 3*t.NumField())
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		alias := sf.Tag.Get("confignamev1")
		if alias == "-" {
			continue
		}
		p := felixParam{index: i, ms: sf.Tag.Get("timescale") == "ms"}
		for _, n := range []string{jsonName(sf), sf.Name, alias} {
			n = strings.ToUpper(n)
			if _, dup := byName[n]; n == "" || dup {
				continue
			}
			byName[n] = len(params)
			p.names = append(p.names, n)
		}
		params = append(params, p)
	}
	return params, byName
}

// FelixEnvNames returns, for each overridable field's JSON name, the
// environment variables that set it (e.g. "ipipMTU": FELIX_IPIPMTU,
// FELIX_IPINIPMTU).
func FelixEnvNames() map[string][]string {
	params, _ := felixParams()
	t := reflect.TypeFor[FelixConfigurationSpec]()
	out := make(map[string][]string, len(params))
	for _, p := range params {
		names := make([]string, len(p.names))
		for i, n := range p.names {
			names[i] = FelixEnvPrefix + n
		}
		out[jsonName(t.Field(p.index))] = names
	}
	return out
}

// Set sets one field from a Felix-style setting. The key is FELIX_<NAME> or
// <NAME>, where NAME is the field's JSON name, Go name or Felix parameter
// name, compared case-insensitively. Values are parsed by the field's type:
// booleans (true/false/yes/no/1/0), integers (decimal or 0x hex), durations
// (Go text such as "30s", or a bare number of seconds, or of milliseconds
// for the *Millis parameters), comma-separated lists, "min-max" route table
// ranges, "k=v,k=v" maps, failsafe ports as "tcp:22,udp:10.0.0.0/8:53", or
// JSON for anything structured.
func (s *FelixConfigurationSpec) Set(key, value string) error {
	params, byName := felixParams()
	name := strings.ToUpper(key)
	name = strings.TrimPrefix(name, FelixEnvPrefix)
	i, ok := byName[name]
	if !ok {
		return fmt.Errorf("unknown Felix setting %s", FelixEnvPrefix+name)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("set %s: the value is not valid UTF-8", FelixEnvPrefix+name)
	}
	p := params[i]
	fv := reflect.ValueOf(s).Elem().Field(p.index)
	if err := setFromString(fv, strings.TrimSpace(value), p.ms); err != nil {
		return fmt.Errorf("set %s=%q: %w", FelixEnvPrefix+name, value, err)
	}
	return nil
}

// ApplyOverrides sets every field for which get returns a value under one of
// the field's FELIX_* names (get is typically os.LookupEnv). Two names of
// one field set to different values is an error. On any error nothing is
// changed.
func (s *FelixConfigurationSpec) ApplyOverrides(get func(name string) (string, bool)) error {
	params, _ := felixParams()
	work := *s
	var es []error
	for _, p := range params {
		var setBy, val string
		for _, n := range p.names {
			v, ok := get(FelixEnvPrefix + n)
			if !ok {
				continue
			}
			if setBy != "" && v != val {
				es = append(es, fmt.Errorf("%s%s=%q and %s=%q set the same field differently", FelixEnvPrefix, n, v, setBy, val))
				continue
			}
			setBy, val = FelixEnvPrefix+n, v
		}
		if setBy != "" {
			es = append(es, work.Set(setBy, val))
		}
	}
	if err := errors.Join(es...); err != nil {
		return err
	}
	*s = work
	return nil
}

// FelixBootstrapParams are Felix parameters that are not FelixConfiguration
// fields (datastore and Typha connection, host name, test hooks): Felix reads
// them from its environment before it can read any configuration resource.
// ApplyEnviron leaves them to the caller instead of calling them unknown.
var FelixBootstrapParams = []string{
	"DATASTORETYPE", "ETCDADDR", "ETCDSCHEME", "ETCDENDPOINTS", "ETCDDISCOVERYSRV",
	"ETCDUSERNAME", "ETCDPASSWORD", "ETCDKEYFILE", "ETCDCERTFILE", "ETCDCAFILE",
	"FELIXHOSTNAME", "TYPHAADDR", "TYPHAK8SSERVICENAME", "TYPHAK8SNAMESPACE",
	"TYPHAKEYFILE", "TYPHACERTFILE", "TYPHACAFILE", "TYPHACN", "TYPHAURISAN",
	"TYPHAREADTIMEOUT", "TYPHAWRITETIMEOUT", "DEBUGSKIPCTLBCLEANUP",
}

// ApplyEnviron applies every FELIX_* entry of environ ("KEY=value", as
// os.Environ returns) and reports the FELIX_* keys that name neither a
// field nor one of FelixBootstrapParams. On any error nothing is changed.
func (s *FelixConfigurationSpec) ApplyEnviron(environ []string) error {
	_, byName := felixParams()
	for _, b := range FelixBootstrapParams {
		byName[b] = -1
	}
	env := map[string]string{}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		name, ok := strings.CutPrefix(uk, FelixEnvPrefix)
		if !ok {
			continue
		}
		i, known := byName[name]
		if !known {
			unknown = append(unknown, k)
			continue
		}
		if i >= 0 {
			env[uk] = v
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown Felix settings: %s", strings.Join(unknown, ", "))
	}
	return s.ApplyOverrides(func(n string) (string, bool) { v, ok := env[n]; return v, ok })
}

// setFromString parses s into v according to v's type, allocating new values
// for pointers, slices and maps so that whatever v shared is left untouched.
func setFromString(v reflect.Value, s string, ms bool) error {
	if v.Kind() == reflect.Pointer {
		nv := reflect.New(v.Type().Elem())
		if err := setFromString(nv.Elem(), s, ms); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	}
	if strings.HasPrefix(s, "{") || (strings.HasPrefix(s, "[") && v.Kind() == reflect.Slice) {
		nv := reflect.New(v.Type())
		if err := json.Unmarshal([]byte(s), nv.Interface()); err != nil {
			return err
		}
		v.Set(nv.Elem())
		return nil
	}
	switch x := v.Addr().Interface().(type) {
	case *Duration:
		d, err := parseFelixDuration(s, ms)
		x.Duration = d
		return err
	case *Port:
		p, err := ParsePort(s)
		*x = p
		return err
	case *DSCP:
		d, err := ParseDSCP(s)
		*x = d
		return err
	case *RouteTableRange:
		lo, hi, err := parseRange(s)
		*x = RouteTableRange{Min: lo, Max: hi}
		return err
	case *RouteTableRanges:
		out := RouteTableRanges{}
		for _, item := range splitList(s) {
			lo, hi, err := parseRange(item)
			if err != nil {
				return err
			}
			out = append(out, RouteTableIDRange{Min: lo, Max: hi})
		}
		*x = out
		return nil
	case *[]ProtoPort:
		out, err := parseProtoPorts(s)
		*x = out
		return err
	case *[]HealthTimeoutOverride:
		out := []HealthTimeoutOverride{}
		for _, item := range splitList(s) {
			k, val, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("want name=duration, got %q", item)
			}
			d, err := parseFelixDuration(val, false)
			if err != nil {
				return err
			}
			out = append(out, HealthTimeoutOverride{Name: strings.TrimSpace(k), Timeout: Duration{d}})
		}
		*x = out
		return nil
	case *BPFConntrackTimeouts:
		return setStructFromKV(v, s)
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseFelixBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer of %d bits", v.Type().Bits())
		}
		v.SetUint(n)
	case reflect.Slice:
		items := splitList(s)
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := setFromString(out.Index(i), item, ms); err != nil {
				return err
			}
		}
		v.Set(out)
	case reflect.Map:
		out := reflect.MakeMap(v.Type())
		for _, item := range splitList(s) {
			k, val, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("want key=value, got %q", item)
			}
			out.SetMapIndex(reflect.ValueOf(strings.TrimSpace(k)), reflect.ValueOf(strings.TrimSpace(val)))
		}
		v.Set(out)
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}

// setStructFromKV sets the string-pointer fields of a struct from
// "name=value,name=value", names matched case-insensitively to JSON names.
func setStructFromKV(v reflect.Value, s string) error {
	nv := reflect.New(v.Type()).Elem()
	t := v.Type()
	for _, item := range splitList(s) {
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("want name=value, got %q", item)
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			if strings.EqualFold(jsonName(t.Field(i)), strings.TrimSpace(k)) {
				if err := setFromString(nv.Field(i), strings.TrimSpace(val), false); err != nil {
					return err
				}
				found = true
			}
		}
		if !found {
			return fmt.Errorf("unknown name %q", k)
		}
	}
	v.Set(nv)
	return nil
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func parseFelixBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "t", "1", "yes", "y", "on":
		return true, nil
	case "false", "f", "0", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// parseFelixDuration reads Go duration text or a bare number of seconds
// (milliseconds when ms is set), as Felix reads its *Secs and *Millis
// parameters.
func parseFelixDuration(s string, ms bool) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e9 || f < -1e9 {
		return 0, fmt.Errorf("not a duration: use Go text such as 30s or a number of seconds")
	}
	unit := time.Second
	if ms {
		unit = time.Millisecond
	}
	return time.Duration(f * float64(unit)), nil
}

func parseRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("want a range min-max, got %q", s)
	}
	return l, h, nil
}

// parseProtoPorts reads Felix's failsafe port list: "none" or entries
// "port", "proto:port" or "proto:net:port" (an IPv6 net in brackets).
func parseProtoPorts(s string) ([]ProtoPort, error) {
	out := []ProtoPort{}
	if strings.EqualFold(strings.TrimSpace(s), "none") {
		return out, nil
	}
	for _, item := range splitList(s) {
		var p ProtoPort
		rest := item
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			p.Protocol, rest = rest[:i], rest[i+1:]
		}
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			p.Net = strings.Trim(rest[:i], "[]")
			rest = rest[i+1:]
		}
		n, err := strconv.ParseUint(rest, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("want [proto:][net:]port, got %q", item)
		}
		p.Port = uint16(n)
		out = append(out, p)
	}
	return out, nil
}
