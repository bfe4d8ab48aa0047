package api

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/selector"
)

// FieldError is one validation failure, naming the field by its JSON path
// (e.g. "spec.blockSize") so a person can find it in their YAML.
type FieldError struct {
	Field  string
	Value  any // nil when the value is not worth echoing
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return e.Field + ": " + e.Reason
	}
	if s, ok := e.Value.(string); ok {
		return fmt.Sprintf("%s = %q: %s", e.Field, s, e.Reason)
	}
	return fmt.Sprintf("%s = %v: %s", e.Field, e.Value, e.Reason)
}

func fieldErr(field string, value any, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// errs collects field errors; its err() is nil when there are none.
type errs []error

func (e *errs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

func (e errs) err() error { return errors.Join(e...) }

var (
	// DNS-1123 subdomain: what upstream requires of most resource names.
	dns1123Subdomain = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// DNS-1123 label: namespaces.
	dns1123Label = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// Label values (may be empty) and the name part of label keys.
	labelValue = lazyRegexp(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	// Interface names as Linux accepts them.
	ifaceName = lazyRegexp(`^[a-zA-Z0-9_.\-]{1,15}$`)
)

// ValidateName checks a resource name is a DNS-1123 subdomain of at most 253 characters.
func ValidateName(field, name string) error {
	switch {
	case name == "":
		return fieldErr(field, nil, "a name is required")
	case len(name) > 253:
		return fieldErr(field, name, "must be at most 253 characters")
	case !dns1123Subdomain().MatchString(name):
		return fieldErr(field, name, "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character")
	}
	return nil
}

// ValidateNamespace checks a namespace name is a DNS-1123 label.
func ValidateNamespace(field, ns string) error {
	if len(ns) > 63 || !dns1123Label().MatchString(ns) {
		return fieldErr(field, ns, "must be a DNS-1123 label: lower case alphanumeric characters or '-', at most 63 characters")
	}
	return nil
}

// ValidateLabels checks Kubernetes label syntax: keys are [prefix/]name with a
// DNS subdomain prefix and a name of at most 63 characters; values at most 63.
func ValidateLabels(field string, labels map[string]string) error {
	var es errs
	for k, v := range labels {
		name := k
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			prefix := k[:i]
			name = k[i+1:]
			if len(prefix) > 253 || !dns1123Subdomain().MatchString(prefix) {
				es.add(fieldErr(field, k, "label key prefix must be a DNS subdomain"))
				continue
			}
		}
		if name == "" || len(name) > 63 || !labelValue().MatchString(name) {
			es.add(fieldErr(field, k, "invalid label key: alphanumeric, '-', '_' or '.', at most 63 characters, starting and ending with an alphanumeric"))
		}
		if len(v) > 63 || !labelValue().MatchString(v) {
			es.add(fieldErr(field+"."+k, v, "invalid label value: alphanumeric, '-', '_' or '.', at most 63 characters, starting and ending with an alphanumeric"))
		}
	}
	return es.err()
}

// ValidateSelector checks a selector expression parses.
func ValidateSelector(field, s string) error {
	if err := selector.Validate(s); err != nil {
		return fieldErr(field, s, "invalid selector: %v", err)
	}
	return nil
}

// ValidateInterfaceName checks a Linux interface name.
func ValidateInterfaceName(field, name string) error {
	if !ifaceName().MatchString(name) {
		return fieldErr(field, name, "invalid interface name")
	}
	return nil
}

// ParseCIDR parses a CIDR in either family and returns it masked to its
// network address, the normal form upstream stores ("10.0.0.1/16" -> "10.0.0.0/16").
// A bare address is not a CIDR.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: IPv4-mapped IPv6 is not allowed", s)
	}
	return p.Masked(), nil
}

// ParseAddrOrCIDR accepts "a.b.c.d", "a.b.c.d/nn" or IPv6 forms and returns
// the prefix unmasked (a bare address becomes /32 or /128).
func ParseAddrOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validateCIDRList(field string, nets []string) error {
	var es errs
	for i, n := range nets {
		if _, err := ParseAddrOrCIDR(n); err != nil {
			es.add(fieldErr(fmt.Sprintf("%s[%d]", field, i), n, "not an IP address or CIDR"))
		}
	}
	return es.err()
}

func validateIP(field, s string, bits int) error {
	a, err := netip.ParseAddr(s)
	if err != nil || (bits == 32 && !a.Is4()) || (bits == 128 && !a.Is6()) {
		fam := "an IP"
		if bits == 32 {
			fam = "an IPv4"
		} else if bits == 128 {
			fam = "an IPv6"
		}
		return fieldErr(field, s, "must be %s address", fam)
	}
	return nil
}

func oneOf[T ~string](field string, v T, allowed ...T) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = string(a)
	}
	return fieldErr(field, string(v), "must be one of %s", strings.Join(s, ", "))
}

// ValidateMeta checks the metadata common to every kind.
func ValidateMeta(k KindInfo, m *ObjectMeta) error {
	var es errs
	es.add(ValidateName("metadata.name", m.Name))
	if k.Namespaced {
		if m.Namespace != "" {
			es.add(ValidateNamespace("metadata.namespace", m.Namespace))
		}
	} else if m.Namespace != "" {
		es.add(fieldErr("metadata.namespace", m.Namespace, "%s is not namespaced", k.Kind))
	}
	es.add(ValidateLabels("metadata.labels", m.Labels))
	es.add(ValidateAnnotations("metadata.annotations", m.Annotations))
	return es.err()
}

// Validate runs every check that needs no datastore: metadata, then the
// kind's own field rules.
func Validate(r Resource) error {
	k, ok := KindOf(r)
	if !ok {
		return fieldErr("kind", r.GetTypeMeta().Kind, "unknown resource kind")
	}
	var es errs
	es.add(ValidateMeta(k, r.GetObjectMeta()))
	if v, ok := r.(Validator); ok {
		es.add(v.Validate())
	}
	return es.err()
}

// Default applies the kind's defaults, if it has any.
func Default(r Resource) {
	if d, ok := r.(Defaulter); ok {
		d.Default()
	}
}

func validateMAC(field, s string) error {
	if _, err := net.ParseMAC(s); err != nil {
		return fieldErr(field, s, "not a MAC address")
	}
	return nil
}
