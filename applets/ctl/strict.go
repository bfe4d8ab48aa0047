package ctl

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
)

// checkStrictResource checks a parsed document against the Go type of r
// before it is decoded: encoding/json alone would ignore unknown fields,
// match field names case-insensitively, and report type errors without
// saying where. The first problem is returned as an *api.FieldError naming
// the field by its path (spec.blockSize, metadata.labels["app"]).
func checkStrictResource(m map[string]any, r api.Resource) error {
	return checkStrict("", m, reflect.TypeOf(r))
}

func checkStrict(path string, v any, t reflect.Type) error {
	if v == nil {
		return nil // null leaves the zero value, as encoding/json does
	}
	if t.Kind() == reflect.Pointer {
		return checkStrict(path, v, t.Elem())
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		b, _ := json.Marshal(v)
		if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
			return &api.FieldError{Field: path, Value: echo(v), Reason: strings.TrimPrefix(err.Error(), "json: ")}
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		s, ok := v.(string)
		if !ok {
			return typeError(path, v, "a string")
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return &api.FieldError{Field: path, Value: s, Reason: err.Error()}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Interface:
		return nil
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return typeError(path, v, "a mapping")
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				return unknownField(join(path, k), k, fields)
			}
			if err := checkStrict(join(path, k), m[k], ft); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return typeError(path, v, "a mapping")
		}
		for _, k := range sortedKeys(m) {
			if err := checkStrict(join(path, k), m[k], t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); !ok {
				return typeError(path, v, "a base64 string")
			}
			return nil
		}
		l, ok := v.([]any)
		if !ok {
			return typeError(path, v, "a list")
		}
		for i, e := range l {
			if err := checkStrict(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if _, ok := v.(string); !ok {
			return typeError(path, v, "a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return typeError(path, v, "true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "an integer")
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			return typeError(path, v, fmt.Sprintf("an integer that fits in %d bits", t.Bits()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "a non-negative integer")
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			return typeError(path, v, fmt.Sprintf("a non-negative integer below 2^%d", t.Bits()))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "a number")
		}
		if _, err := strconv.ParseFloat(n.String(), t.Bits()); err != nil {
			return typeError(path, v, "a number")
		}
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their types,
// following embedded structs as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func unknownField(path, key string, fields map[string]reflect.Type) error {
	reason := "field is not recognized or is in the wrong location"
	for k := range fields {
		if strings.EqualFold(k, key) {
			reason += fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", k)
			break
		}
	}
	return &api.FieldError{Field: path, Reason: reason}
}

func typeError(path string, v any, want string) error {
	reason := "must be " + want + ", not " + jsonTypeName(v)
	if _, ok := v.(bool); ok && want == "a string" {
		reason += " (YAML reads unquoted yes, no, on, off, y and n as booleans: quote the value)"
	}
	return &api.FieldError{Field: path, Value: echo(v), Reason: reason}
}

// echo returns v when it is short enough to quote in a message.
func echo(v any) any {
	switch t := v.(type) {
	case string:
		if len(t) > 60 {
			return t[:57] + "..."
		}
		return t
	case json.Number, bool:
		return t
	}
	return nil
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// plainKey reports whether key can follow a dot in a field path.
func plainKey(key string) bool {
	for i, c := range key {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return key != ""
}

// join appends a key to a field path: spec.cidr, metadata.labels["k8s-app"].
func join(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
