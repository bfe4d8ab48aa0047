package datastore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// Client stores projectcalico.org/v3 resources in a kv.Store exactly as
// upstream Calico does: key per kind/namespace/name, the whole object as
// compact JSON with kind and apiVersion, resourceVersion and selfLink
// cleared before the write, uid and creationTimestamp set on create, and
// resourceVersion on read = the etcd mod revision.
type Client struct {
	KV  kv.Store
	Now func() time.Time // the clock for creationTimestamp; time.Now if nil
}

// NewClient returns a Client over be.
func NewClient(be kv.Store) *Client { return &Client{KV: be} }

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func lookup(kind string) (api.KindInfo, error) {
	k, ok := api.LookupKind(kind)
	if !ok {
		return api.KindInfo{}, fmt.Errorf("unknown resource kind %q", kind)
	}
	return k, nil
}

// keyOf returns the key of r, defaulting the namespace of namespaced kinds to "default".
func keyOf(r api.Resource) (api.KindInfo, string, error) {
	k, err := lookup(r.GetTypeMeta().Kind)
	if err != nil {
		return k, "", err
	}
	m := r.GetObjectMeta()
	if k.Namespaced && m.Namespace == "" {
		m.Namespace = "default"
	}
	return k, k.Key(m.Namespace, m.Name), nil
}

// Decode turns a stored value into a resource of kind k with its
// resourceVersion set and defaults applied, as upstream's client does on read.
func Decode(k api.KindInfo, item *kv.KV) (api.Resource, error) {
	r := k.New()
	if err := json.Unmarshal(item.Value, r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", item.Key, err)
	}
	tm := r.GetTypeMeta()
	tm.Kind, tm.APIVersion = k.Kind, api.APIVersion
	r.GetObjectMeta().ResourceVersion = strconv.FormatInt(item.Revision, 10)
	api.Default(r)
	return r, nil
}

// Encode renders r as it is stored: kind and apiVersion set, resourceVersion
// and selfLink cleared.
func Encode(r api.Resource) ([]byte, error) {
	k, err := lookup(r.GetTypeMeta().Kind)
	if err != nil {
		return nil, err
	}
	m := r.GetObjectMeta()
	rv, sl := m.ResourceVersion, m.SelfLink
	m.ResourceVersion, m.SelfLink = "", ""
	tm := r.GetTypeMeta()
	tm.Kind, tm.APIVersion = k.Kind, api.APIVersion
	b, err := json.Marshal(r)
	m.ResourceVersion, m.SelfLink = rv, sl
	return b, err
}

// Get reads one resource. Kind may be any name LookupKind accepts.
//
// A default-tier (Global)NetworkPolicy asked for by its plain name is also
// found under the "default.<name>" key releases up to v3.29 wrote.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (api.Resource, error) {
	return c.get(ctx, kind, namespace, name, true)
}

// get reads one resource; legacy enables the "default.<name>" fallback,
// which writes must not use (they compare-and-swap on the exact key).
func (c *Client) get(ctx context.Context, kind, namespace, name string, legacy bool) (api.Resource, error) {
	k, err := lookup(kind)
	if err != nil {
		return nil, err
	}
	if k.Namespaced && namespace == "" {
		namespace = "default"
	}
	if k.Kind == api.KindProfile && name == api.DefaultAllowProfile {
		return api.NewDefaultAllowProfile(), nil
	}
	item, err := c.KV.Get(ctx, k.Key(namespace, name))
	if lname, ok := legacyPolicyName(k, name); ok && legacy && errors.Is(err, kv.ErrNotFound) {
		if litem, lerr := c.KV.Get(ctx, k.Key(namespace, lname)); lerr == nil {
			item, err = litem, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return Decode(k, item)
}

// legacyPolicyName returns the key name releases up to v3.29 used for a
// default-tier policy ("default.<name>"), which v3.30 and later read under
// the plain name.
func legacyPolicyName(k api.KindInfo, name string) (string, bool) {
	if k.Kind != api.KindNetworkPolicy && k.Kind != api.KindGlobalNetworkPolicy {
		return "", false
	}
	if name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return api.DefaultTierName + "." + name, true
}

// List reads every resource of a kind (in one namespace, or all with ""),
// in key order, and the revision the list is consistent at. Values that do
// not parse are skipped, as upstream does.
func (c *Client) List(ctx context.Context, kind, namespace string) ([]api.Resource, int64, error) {
	k, err := lookup(kind)
	if err != nil {
		return nil, 0, err
	}
	kvs, rev, err := c.KV.List(ctx, k.ListPrefix(namespace))
	if err != nil {
		return nil, 0, err
	}
	out := make([]api.Resource, 0, len(kvs)+1)
	for _, item := range kvs {
		if r, err := Decode(k, item); err == nil {
			out = append(out, r)
		}
	}
	if k.Kind == api.KindProfile {
		out = append(out, api.NewDefaultAllowProfile())
	}
	return out, rev, nil
}

// ListOf is List with the result typed; T is the kind's pointer type.
func ListOf[T api.Resource](ctx context.Context, c *Client, kind, namespace string) ([]T, int64, error) {
	rs, rev, err := c.List(ctx, kind, namespace)
	if err != nil {
		return nil, 0, err
	}
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		if t, ok := r.(T); ok {
			out = append(out, t)
		}
	}
	return out, rev, nil
}

// GetOf is Get with the result typed.
func GetOf[T api.Resource](ctx context.Context, c *Client, kind, namespace, name string) (T, error) {
	var zero T
	r, err := c.Get(ctx, kind, namespace, name)
	if err != nil {
		return zero, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("get %s %s: stored value has an unexpected type %T", kind, name, r)
	}
	return t, nil
}

// Check does everything Create, Update or Apply would do before writing:
// defaults, field validation, immutability against the stored object (when
// it exists) and the checks that need the datastore (overlapping pools, ...).
// It writes nothing and returns the stored object, or nil if there is none.
func (c *Client) Check(ctx context.Context, r api.Resource) (old api.Resource, err error) {
	return c.prepare(ctx, r, true)
}

func (c *Client) prepare(ctx context.Context, r api.Resource, readOld bool) (old api.Resource, err error) {
	k, _, err := keyOf(r)
	if err != nil {
		return nil, err
	}
	api.Default(r)
	if err := api.Validate(r); err != nil {
		return nil, err
	}
	if readOld {
		m := r.GetObjectMeta()
		old, err = c.get(ctx, k.Kind, m.Namespace, m.Name, false)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			old = nil
		case err != nil:
			return nil, err
		default:
			if uv, ok := r.(api.UpdateValidator); ok {
				if err := uv.ValidateUpdate(old); err != nil {
					return nil, err
				}
			}
		}
	}
	if v := storeValidators[k.Kind]; v != nil {
		if err := v(ctx, c, r); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// Create stores a new resource; kv.ErrExists if it is already there. It fills
// uid and creationTimestamp when they are empty and returns the stored object.
func (c *Client) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	if _, err := c.prepare(ctx, r, false); err != nil {
		return nil, err
	}
	return c.create(ctx, r)
}

func (c *Client) create(ctx context.Context, r api.Resource) (api.Resource, error) {
	_, key, err := keyOf(r)
	if err != nil {
		return nil, err
	}
	m := r.GetObjectMeta()
	if m.UID == "" {
		m.UID = newUID()
	}
	if m.CreationTimestamp == "" {
		m.CreationTimestamp = c.now().UTC().Format(time.RFC3339)
	}
	b, err := Encode(r)
	if err != nil {
		return nil, err
	}
	rev, err := c.KV.Create(ctx, key, b)
	if err != nil {
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return r, nil
}

// Update replaces a stored resource. With a resourceVersion the write is a
// compare-and-swap on it (kv.ErrConflict when the object changed since); without
// one it is a compare-and-swap on the revision just read. uid and
// creationTimestamp are carried over from the stored object when r lacks them.
func (c *Client) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	old, err := c.Check(ctx, r)
	if err != nil {
		return nil, err
	}
	_, key, _ := keyOf(r)
	if old == nil {
		return nil, &kv.KeyError{Op: "update", Key: key, Err: kv.ErrNotFound}
	}
	return c.update(ctx, r, old)
}

func (c *Client) update(ctx context.Context, r, old api.Resource) (api.Resource, error) {
	_, key, err := keyOf(r)
	if err != nil {
		return nil, err
	}
	m, om := r.GetObjectMeta(), old.GetObjectMeta()
	rev := om.ResourceVersion
	if m.ResourceVersion != "" && m.ResourceVersion != rev {
		return nil, &kv.KeyError{Op: "update", Key: key, Err: kv.ErrConflict}
	}
	if m.UID == "" {
		m.UID = om.UID
	}
	if m.CreationTimestamp == "" {
		m.CreationTimestamp = om.CreationTimestamp
	}
	b, err := Encode(r)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(rev, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("update %s: bad stored revision %q", key, rev)
	}
	nrev, err := c.KV.Update(ctx, key, b, n)
	if err != nil {
		return nil, err
	}
	m.ResourceVersion = strconv.FormatInt(nrev, 10)
	return r, nil
}

// Apply creates the resource or, if it exists, updates it (keeping its uid
// and creationTimestamp), as `calicoctl apply` does.
func (c *Client) Apply(ctx context.Context, r api.Resource) (api.Resource, error) {
	old, err := c.Check(ctx, r)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return c.create(ctx, r)
	}
	return c.update(ctx, r, old)
}

// Delete removes a resource and returns what was stored. With a
// resourceVersion the delete is a compare-and-swap on it.
func (c *Client) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) (api.Resource, error) {
	k, err := lookup(kind)
	if err != nil {
		return nil, err
	}
	if k.Namespaced && namespace == "" {
		namespace = "default"
	}
	key := k.Key(namespace, name)
	if k.Kind == api.KindProfile && name == api.DefaultAllowProfile {
		return nil, fmt.Errorf("delete %s: the built-in profile cannot be deleted", name)
	}
	item, err := c.KV.Get(ctx, key)
	if legacy, ok := legacyPolicyName(k, name); ok && errors.Is(err, kv.ErrNotFound) {
		if litem, lerr := c.KV.Get(ctx, k.Key(namespace, legacy)); lerr == nil {
			key, item, err = k.Key(namespace, legacy), litem, nil
		}
	}
	if err != nil {
		return nil, err
	}
	rev := item.Revision
	if resourceVersion != "" {
		if rev, err = strconv.ParseInt(resourceVersion, 10, 64); err != nil {
			return nil, fmt.Errorf("delete %s: resourceVersion %q is not a number", key, resourceVersion)
		}
	}
	old, err := Decode(k, item)
	if err != nil {
		return nil, err
	}
	if err := c.KV.Delete(ctx, key, rev); err != nil {
		return nil, err
	}
	return old, nil
}

// ClusterInfoName is the name of the ClusterInformation singleton.
const ClusterInfoName = "default"

// EnsureInitialized creates what upstream creates on the first write: the
// ClusterInformation "default" (a new cluster GUID, datastoreReady true) and
// the built-in tiers. Existing objects are left alone.
func (c *Client) EnsureInitialized(ctx context.Context) error {
	_, err := c.Get(ctx, api.KindClusterInformation, "", ClusterInfoName)
	if err == nil {
		return nil
	}
	if !errors.Is(err, kv.ErrNotFound) {
		return err
	}
	ci := api.NewClusterInformation()
	ci.Name = ClusterInfoName
	ready := true
	ci.Spec.ClusterGUID = newGUID()
	ci.Spec.DatastoreReady = &ready
	if _, err := c.create(ctx, ci); err != nil && !errors.Is(err, kv.ErrExists) {
		return fmt.Errorf("create cluster information: %w", err)
	}
	for _, t := range api.DefaultTiers() {
		if _, err := c.create(ctx, t); err != nil && !errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("create tier %s: %w", t.Name, err)
		}
	}
	return nil
}

// newUID returns a random RFC 4122 version 4 UUID.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newGUID returns 32 random hex characters, the form of upstream's clusterGUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
