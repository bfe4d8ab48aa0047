package api

import "encoding/json"

// Group and APIVersion name the API every resource belongs to.
const (
	Group      = "projectcalico.org"
	APIVersion = Group + "/v3"
)

// TypeMeta carries a resource's kind and API version, inline in its JSON.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// GetTypeMeta gives access to the embedded TypeMeta; every kind has it by embedding.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// ObjectMeta is the Kubernetes-style metadata of a resource, with the JSON
// field names and order of k8s.io/apimachinery's ObjectMeta.
// CreationTimestamp is kept as the RFC 3339 text upstream stores.
type ObjectMeta struct {
	Name                       string            `json:"name,omitempty"`
	GenerateName               string            `json:"generateName,omitempty"`
	Namespace                  string            `json:"namespace,omitempty"`
	SelfLink                   string            `json:"selfLink,omitempty"`
	UID                        string            `json:"uid,omitempty"`
	ResourceVersion            string            `json:"resourceVersion,omitempty"`
	Generation                 int64             `json:"generation,omitempty"`
	CreationTimestamp          string            `json:"creationTimestamp,omitempty"`
	DeletionTimestamp          string            `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds,omitempty"`
	Labels                     map[string]string `json:"labels,omitempty"`
	Annotations                map[string]string `json:"annotations,omitempty"`
	OwnerReferences            []json.RawMessage `json:"ownerReferences,omitempty"`
	Finalizers                 []string          `json:"finalizers,omitempty"`
	ManagedFields              []json.RawMessage `json:"managedFields,omitempty"`
}

// GetObjectMeta gives access to the embedded ObjectMeta; every kind has it by embedding.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// Metadata is GetObjectMeta under the name of the YAML field, for the Go
// templates of `calicoctl get -o go-template` ({{.Metadata.Name}}).
func (m *ObjectMeta) Metadata() *ObjectMeta { return m }

// Resource is any projectcalico.org/v3 object: a pointer to one of the kind
// structs of this package, all of which embed TypeMeta and ObjectMeta.
type Resource interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
}

// Defaulter is implemented by kinds that fill in upstream's defaults.
// Default must be idempotent: it runs on every write and every read.
type Defaulter interface {
	Default()
}

// Validator is implemented by kinds with field-level rules. The error is a
// *FieldError or a join of them.
type Validator interface {
	Validate() error
}

// UpdateValidator is implemented by kinds with immutable fields.
type UpdateValidator interface {
	ValidateUpdate(old Resource) error
}

// List is the `kind: List` wrapper calicoctl reads and prints.
type List struct {
	TypeMeta `json:",inline"`
	Metadata ListMeta          `json:"metadata"`
	Items    []json.RawMessage `json:"items"`
}

// ListMeta is a list's metadata; resourceVersion is the store revision.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}
