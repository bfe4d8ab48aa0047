package api

import (
	"encoding/json"
	"fmt"
)

// Size limits, checked before anything is written so that a multi-document
// apply is refused whole rather than failing half-way at etcd's request
// limit (1.5 MiB by default).
const (
	// MaxAnnotationBytes is the total size of a resource's annotation keys
	// and values, as Kubernetes and upstream Calico allow.
	MaxAnnotationBytes = 256 << 10
	// MaxObjectBytes is the largest encoded resource we store: well inside
	// etcd's default request limit, with room for the key and the request.
	MaxObjectBytes = 1 << 20
)

// ValidateAnnotations checks the total size of annotations. The value is
// not echoed: it is large by definition.
func ValidateAnnotations(field string, a map[string]string) error {
	n := 0
	for k, v := range a {
		n += len(k) + len(v)
	}
	if n > MaxAnnotationBytes {
		return fieldErr(field, nil, "annotations total %d bytes; at most %d are allowed", n, MaxAnnotationBytes)
	}
	return nil
}

// ValidateSize checks the encoded size of the whole resource.
func ValidateSize(r Resource) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if len(b) > MaxObjectBytes {
		return &FieldError{Field: "(whole resource)", Reason: fmt.Sprintf("encodes to %d bytes; at most %d can be stored", len(b), MaxObjectBytes)}
	}
	return nil
}
