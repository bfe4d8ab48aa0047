package api

import (
	"fmt"
	"strings"
)

// ResourcePrefix is the root of every v3 resource key in etcd.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// Key returns the etcd key of a resource:
// <prefix><plural>/<name> or, for namespaced kinds, <prefix><plural>/<ns>/<name>.
func (k KindInfo) Key(namespace, name string) string {
	if k.Namespaced {
		return ResourcePrefix + k.Plural + "/" + namespace + "/" + name
	}
	return ResourcePrefix + k.Plural + "/" + name
}

// ListPrefix returns the key prefix that lists a kind: every object of a
// global kind, or of a namespaced kind in one namespace ("" = all namespaces).
// It always ends in "/", so "ippools" never matches "ippoolsfoo".
func (k KindInfo) ListPrefix(namespace string) string {
	if k.Namespaced && namespace != "" {
		return ResourcePrefix + k.Plural + "/" + namespace + "/"
	}
	return ResourcePrefix + k.Plural + "/"
}

// ParseKey splits a resource key into kind, namespace and name.
func ParseKey(key string) (k KindInfo, namespace, name string, err error) {
	rest, ok := strings.CutPrefix(key, ResourcePrefix)
	if !ok {
		return KindInfo{}, "", "", fmt.Errorf("key %q is not under %s", key, ResourcePrefix)
	}
	parts := strings.Split(rest, "/")
	k, ok = LookupKind(parts[0])
	if !ok || k.Plural != parts[0] {
		return KindInfo{}, "", "", fmt.Errorf("key %q: unknown resource plural %q", key, parts[0])
	}
	switch {
	case k.Namespaced && len(parts) == 3 && parts[1] != "" && parts[2] != "":
		return k, parts[1], parts[2], nil
	case !k.Namespaced && len(parts) == 2 && parts[1] != "":
		return k, "", parts[1], nil
	}
	return KindInfo{}, "", "", fmt.Errorf("key %q: malformed %s key", key, k.Kind)
}
