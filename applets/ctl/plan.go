package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// This file is the pipeline behind create, apply, replace, delete and
// validate: read and decode every document, check every resource (fields,
// immutability, the datastore, and conflicts between documents of the same
// input), and only when all of them pass, write them in input order.

// action is what a pipeline run does with each resource.
type action int

const (
	actCreate action = iota
	actApply
	actReplace
	actDelete
	actValidate
)

// words are the verb's forms in upstream's messages.
func (a action) words() (verb, done string) {
	switch a {
	case actCreate:
		return "create", "created"
	case actApply:
		return "apply", "applied"
	case actReplace:
		return "replace", "replaced"
	case actDelete:
		return "delete", "deleted"
	}
	return "validate", "validated"
}

// crudOptions are the flags the file-driven verbs share.
type crudOptions struct {
	act           action
	filename      string
	recursive     bool
	skipEmpty     bool
	namespace     string
	allNamespaces bool
	skipExists    bool // create
	skipNotExists bool // delete
}

// step is one resource of the input after its checks passed.
type step struct {
	*loaded
	old     api.Resource // the stored object when checked; nil if none
	skip    bool         // --skip-exists / --skip-not-exists: counts as done, nothing written
	missing error        // delete: the resource does not exist; the others are still deleted
}

// resourceID is upstream's identifier: IPPool(pool1), WorkloadEndpoint(ns/name).
func resourceID(k api.KindInfo, namespace, name string) string {
	if k.Namespaced {
		return fmt.Sprintf("%s(%s/%s)", k.Kind, namespace, name)
	}
	return fmt.Sprintf("%s(%s)", k.Kind, name)
}

func idOf(l *loaded) string {
	m := l.res.GetObjectMeta()
	return resourceID(l.kind, m.Namespace, m.Name)
}

// storeError turns the datastore's sentinels into upstream's messages.
func storeError(id string, err error) error {
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return fmt.Errorf("resource does not exist: %s with error: <nil>", id)
	case errors.Is(err, kv.ErrExists):
		return fmt.Errorf("resource already exists: %s", id)
	case errors.Is(err, kv.ErrConflict):
		return fmt.Errorf("update conflict: %s", id)
	}
	return err
}

// resolveNamespace applies -n/-A to a resource's namespace as upstream does.
func resolveNamespace(k api.KindInfo, resNS, cliNS string, allNS bool) (string, error) {
	if !k.Namespaced {
		switch {
		case resNS != "":
			return "", fmt.Errorf("namespace should not be specified for a non-namespaced resource. %s is not a namespaced resource", k.Kind)
		case allNS || cliNS != "":
			return "", fmt.Errorf("%s is not namespaced", k.Kind)
		}
		return "", nil
	}
	switch {
	case allNS && cliNS != "":
		return "", errors.New("cannot use both --namespace and --all-namespaces flags at the same time")
	case allNS:
		return "", nil
	case resNS == "" && cliNS != "":
		return cliNS, nil
	case resNS == "":
		return "default", nil
	case cliNS != "" && resNS != cliNS:
		return "", fmt.Errorf("resource namespace does not match client namespace. %s != %s", resNS, cliNS)
	}
	return resNS, nil
}

// crudResult is what a pipeline run reports.
type crudResult struct {
	total      int
	handled    int
	singleKind string // the kind when every resource is of one kind
}

// singleKind returns the kind shared by every resource, or "".
func singleKind(items []*loaded) string {
	kind := ""
	for i, it := range items {
		if i > 0 && it.kind.Kind != kind {
			return ""
		}
		kind = it.kind.Kind
	}
	return kind
}

// failLines renders errors one per line behind upstream's failure phrase.
func failLines(prefix string, errs []error) error {
	lines := make([]string, 0, len(errs))
	for i, err := range errs {
		if i == 20 {
			lines = append(lines, fmt.Sprintf("%s... and %d more errors", prefix, len(errs)-20))
			break
		}
		lines = append(lines, prefix+oneLine(err))
	}
	return errors.New(strings.Join(lines, "\n"))
}

// failurePrefix is upstream's phrase for a run in which nothing was done.
func failurePrefix(a action, total int, kind string) string {
	verb, _ := a.words()
	f := "Failed to "
	if a == actValidate {
		f = "failed to "
	}
	switch {
	case total == 1:
		return fmt.Sprintf("%s%s '%s' resource: ", f, verb, kind)
	case kind != "":
		return fmt.Sprintf("%s%s any '%s' resources: ", f, verb, kind)
	}
	return fmt.Sprintf("%s%s any resources: ", f, verb)
}

// runCRUD runs one file-driven verb end to end and prints upstream's success
// line. items, when not nil, replaces reading o.filename (delete by kind and name).
func runCRUD(ctx context.Context, e *Env, o crudOptions, items []*loaded) error {
	execFail := "Failed to execute command: "
	if o.act == actValidate {
		execFail = "failed to execute command: "
	}
	byArgs := items != nil
	if !byArgs {
		var errs []error
		var err error
		items, errs, err = e.loadInput(o.filename, o.recursive, o.skipEmpty)
		switch {
		case isEmptyInput(err):
			return err
		case err != nil:
			return fmt.Errorf("%s%v", execFail, err)
		case len(errs) > 0:
			return failLines(execFail, errs)
		case len(items) == 0:
			fmt.Fprintln(e.Stdout, "No resources specified")
			return nil
		}
	}
	res := crudResult{total: len(items), singleKind: singleKind(items)}
	if byArgs {
		res.singleKind = items[0].kind.Kind
	}

	// Namespaces first: they are part of each resource's identity.
	var errs []error
	for _, it := range items {
		m := it.res.GetObjectMeta()
		ns, err := resolveNamespace(it.kind, m.Namespace, o.namespace, o.allNamespaces)
		if err != nil {
			errs = append(errs, &inputError{src: it.src, what: it.label(), err: err})
			continue
		}
		m.Namespace = ns
	}
	if len(errs) > 0 {
		return failLines(failurePrefix(o.act, res.total, res.singleKind), errs)
	}

	var c *datastore.Client
	if o.act == actValidate {
		c = e.validationClient(ctx)
	} else {
		var err error
		if c, err = e.Client(); err != nil {
			return fmt.Errorf("Failed to create Calico API client: %v", err)
		}
	}

	steps, errs := checkAll(ctx, c, o, items)
	if len(errs) > 0 {
		return failLines(failurePrefix(o.act, res.total, res.singleKind), errs)
	}
	_, done := o.act.words()
	if o.act != actValidate {
		if o.act != actDelete {
			// Like upstream, a failure here does not stop the command: the
			// user may only be allowed to write some kinds.
			_ = c.EnsureInitialized(ctx)
		}
		var missing []error
		for _, s := range steps {
			if s.missing != nil {
				missing = append(missing, s.missing)
				continue
			}
			if err := writeStep(ctx, e, c, o, s); err != nil {
				return partialFailure(e, o.act, res, s, err)
			}
			res.handled++
		}
		if len(missing) > 0 {
			return missingFailure(e, res, missing)
		}
	} else {
		res.handled = len(steps)
	}
	if res.singleKind != "" {
		fmt.Fprintf(e.Stdout, "Successfully %s %d '%s' resource(s)\n", done, res.handled, res.singleKind)
	} else {
		fmt.Fprintf(e.Stdout, "Successfully %s %d resource(s)\n", done, res.handled)
	}
	return nil
}

// partialFailure reports a write that failed after the checks passed
// (someone else changed the datastore in between): what was written, and
// the resource that failed. Resources after it were not attempted.
func partialFailure(e *Env, a action, res crudResult, s *step, err error) error {
	verb, done := a.words()
	where := idOf(s.loaded)
	if s.src.file != "" {
		where += " (" + s.src.String() + ")"
	}
	if res.handled == 0 {
		return fmt.Errorf("%s%s: %s", failurePrefix(a, res.total, res.singleKind), where, oneLine(err))
	}
	if res.singleKind != "" {
		fmt.Fprintf(e.Stdout, "Partial success: %s the first %d out of %d '%s' resources:\n", done, res.handled, res.total, res.singleKind)
	} else {
		fmt.Fprintf(e.Stdout, "Partial success: %s the first %d out of %d resources:\n", done, res.handled, res.total)
	}
	rest := ""
	if n := res.total - res.handled - 1; n > 0 {
		rest = fmt.Sprintf("; the %d resource(s) after it were not attempted", n)
	}
	return fmt.Errorf("Hit error: failed to %s %s: %s%s", verb, where, oneLine(err), rest)
}

// missingFailure reports a delete in which some named resources did not
// exist: like upstream, the others were deleted, and the command fails
// naming each missing one.
func missingFailure(e *Env, res crudResult, missing []error) error {
	if res.handled == 0 {
		return failLines(failurePrefix(actDelete, res.total, res.singleKind), missing)
	}
	if res.singleKind != "" {
		fmt.Fprintf(e.Stdout, "Partial success: deleted the first %d out of %d '%s' resources:\n", res.handled, res.total, res.singleKind)
	} else {
		fmt.Fprintf(e.Stdout, "Partial success: deleted the first %d out of %d resources:\n", res.handled, res.total)
	}
	return failLines("Hit error: ", missing)
}

// checkAll checks every resource before anything is written. A resource
// missing from a delete is a step (the others are still deleted) unless
// another resource fails its checks: then every error is returned, in input order.
func checkAll(ctx context.Context, c *datastore.Client, o crudOptions, items []*loaded) ([]*step, []error) {
	var errs []error
	hard := 0
	var steps []*step
	seen := map[string]*loaded{}
	var pools []*loaded
	for _, it := range items {
		fail := func(err error) { errs = append(errs, &inputError{src: it.src, what: it.label(), err: err}); hard++ }
		id := idOf(it)
		if first, dup := seen[id]; dup {
			where := "earlier in the input"
			if first.src.file != "" {
				where = "in " + first.src.String()
			}
			fail(fmt.Errorf("%s is also %s", id, where))
			continue
		}
		seen[id] = it
		s, err := checkOne(ctx, c, o, it)
		if err != nil {
			fail(err)
			continue
		}
		if s.missing != nil {
			s.missing = &inputError{src: it.src, what: it.label(), err: s.missing}
			errs = append(errs, s.missing)
		}
		if p, ok := it.res.(*api.IPPool); ok && o.act != actDelete && !s.skip {
			if err := overlapsInput(p, pools); err != nil {
				fail(err)
				continue
			}
			pools = append(pools, it)
		}
		steps = append(steps, s)
	}
	if hard == 0 {
		return steps, nil
	}
	return steps, errs
}

// overlapsInput refuses a pool that overlaps another pool of the same input;
// the datastore check only sees pools already stored.
func overlapsInput(p *api.IPPool, others []*loaded) error {
	cidr := p.Prefix()
	if !cidr.IsValid() {
		return nil
	}
	for _, o := range others {
		q := o.res.(*api.IPPool)
		if oc := q.Prefix(); oc.IsValid() && oc.Overlaps(cidr) {
			where := ""
			if o.src.file != "" {
				where = " in " + o.src.String()
			}
			return &api.FieldError{Field: "spec.cidr", Value: p.Spec.CIDR,
				Reason: fmt.Sprintf("overlaps IPPool %q (%s)%s", q.Name, q.Spec.CIDR, where)}
		}
	}
	return nil
}

// checkOne runs the checks of one resource for the action.
func checkOne(ctx context.Context, c *datastore.Client, o crudOptions, it *loaded) (*step, error) {
	s := &step{loaded: it}
	m := it.res.GetObjectMeta()
	id := idOf(it)
	if it.kind.Kind == api.KindClusterInformation && o.act != actValidate {
		// calico-node owns it; upstream refuses every write from calicoctl.
		switch o.act {
		case actCreate:
			return nil, errors.New("operation create or apply is not supported on ClusterInformation")
		case actApply:
			return nil, errors.New("operation apply is not supported on ClusterInformation: resource is readonly")
		case actReplace:
			return nil, errors.New("operation apply or replace is not supported on ClusterInformation")
		}
		return nil, errors.New("operation delete is not supported on ClusterInformation")
	}
	if o.act != actDelete {
		// Sizes first: a resource etcd would refuse must fail the whole
		// input here, before anything of it is written.
		if err := api.ValidateAnnotations("metadata.annotations", m.Annotations); err != nil {
			return nil, err
		}
		if err := api.ValidateSize(it.res); err != nil {
			return nil, err
		}
	}
	if c == nil { // validate without a datastore: fields only
		api.Default(it.res)
		return s, api.Validate(it.res)
	}
	if o.act == actDelete {
		old, err := c.Get(ctx, it.kind.Kind, m.Namespace, m.Name)
		switch {
		case errors.Is(err, kv.ErrNotFound) && o.skipNotExists:
			s.skip = true
			return s, nil
		case errors.Is(err, kv.ErrNotFound):
			s.missing = storeError(id, err)
			return s, nil
		case err != nil:
			return nil, storeError(id, err)
		}
		if it.kind.Kind == api.KindProfile && m.Name == api.DefaultAllowProfile {
			return nil, fmt.Errorf("operation delete is not supported on %s: the built-in profile cannot be deleted", id)
		}
		if err := checkVersion(id, m.ResourceVersion, old); err != nil {
			return nil, err
		}
		s.old = old
		return s, nil
	}
	if o.act == actCreate {
		_, err := c.Get(ctx, it.kind.Kind, m.Namespace, m.Name)
		switch {
		case err == nil && o.skipExists:
			s.skip = true
			return s, nil
		case err == nil:
			return nil, fmt.Errorf("resource already exists: %s", id)
		case !errors.Is(err, kv.ErrNotFound):
			return nil, err
		}
	}
	old, err := c.Check(ctx, it.res)
	if err != nil {
		return nil, err
	}
	switch {
	case o.act == actReplace && old == nil:
		return nil, storeError(id, kv.ErrNotFound)
	case (o.act == actReplace || o.act == actApply) && old != nil:
		if err := checkVersion(id, m.ResourceVersion, old); err != nil {
			return nil, err
		}
	}
	s.old = old
	return s, nil
}

// checkVersion refuses a resourceVersion that is not the stored one.
func checkVersion(id, rv string, old api.Resource) error {
	if cur := old.GetObjectMeta().ResourceVersion; rv != "" && rv != cur {
		return fmt.Errorf("update conflict: %s: resource version '%s' is out of date (latest: %s); get the resource again and make the change on that", id, rv, cur)
	}
	return nil
}

// writeStep writes one checked resource. Updates and deletes compare-and-swap
// on the revision the checks saw, so a change made in between is a conflict,
// never silently overwritten.
func writeStep(ctx context.Context, e *Env, c *datastore.Client, o crudOptions, s *step) error {
	if s.skip {
		return nil
	}
	id := idOf(s.loaded)
	switch o.act {
	case actDelete:
		m := s.res.GetObjectMeta()
		rv := s.old.GetObjectMeta().ResourceVersion
		if p, ok := s.old.(*api.IPPool); ok {
			return deletePool(ctx, e, c, p, rv)
		}
		if n, ok := s.old.(*api.Node); ok {
			return deleteNode(ctx, e, c, n, rv)
		}
		_, err := c.Delete(ctx, s.kind.Kind, m.Namespace, m.Name, rv)
		return storeError(id, err)
	case actCreate:
		r := forCreate(s.res)
		_, err := c.Create(ctx, r)
		if errors.Is(err, kv.ErrExists) && o.skipExists {
			return nil
		}
		return storeError(id, err)
	}
	if s.old == nil { // apply of a new resource
		_, err := c.Create(ctx, forCreate(s.res))
		return storeError(id, err)
	}
	_, err := c.Update(ctx, forUpdate(s.old, s.res))
	return storeError(id, err)
}

// forCreate keeps only the metadata a user may set, as upstream does: name,
// namespace, labels and annotations. The rest is the datastore's to fill.
func forCreate(r api.Resource) api.Resource {
	m := r.GetObjectMeta()
	*m = api.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations}
	return r
}

// forUpdate takes the stored metadata, with the labels and annotations of the
// new object, and the stored revision for the compare-and-swap.
func forUpdate(old, r api.Resource) api.Resource {
	m, om := r.GetObjectMeta(), old.GetObjectMeta()
	labels, annotations := m.Labels, m.Annotations
	*m = *om
	m.Labels, m.Annotations = labels, annotations
	return r
}

// deletePool deletes an IPPool the way upstream's client does: disable it so
// IPAM stops allocating from it, release its blocks' affinities, then delete.
func deletePool(ctx context.Context, e *Env, c *datastore.Client, p *api.IPPool, rv string) error {
	id := resourceID(api.KindInfo{Kind: api.KindIPPool}, "", p.Name)
	if !p.Spec.Disabled {
		d, err := copyResource(p)
		if err != nil {
			return err
		}
		dp := d.(*api.IPPool)
		dp.Spec.Disabled = true
		dp.ResourceVersion = rv
		u, err := c.Update(ctx, dp)
		if err != nil {
			return fmt.Errorf("disable pool before deleting it: %w", storeError(id, err))
		}
		rv = u.GetObjectMeta().ResourceVersion
	}
	if err := releasePoolAffinities(ctx, e, p); err != nil {
		return fmt.Errorf("release block affinities in pool %s: %w", p.Spec.CIDR, err)
	}
	_, err := c.Delete(ctx, api.KindIPPool, "", p.Name, rv)
	return storeError(id, err)
}

// releasePoolAffinities releases every node's affinity to the blocks of pool,
// the second step of deleting a pool (after disabling it, before deleting
// it), so no node keeps allocating from blocks of a pool that is going away.
// Empty blocks are deleted; blocks still holding addresses lose their
// affinity and stay until those addresses are released.
func releasePoolAffinities(ctx context.Context, e *Env, pool *api.IPPool) error {
	store, err := e.KV()
	if err != nil {
		return err
	}
	return ipam.New(store, ipam.Options{}).ReleasePoolAffinities(ctx, pool.Prefix())
}

// copyResource returns a deep copy of r.
func copyResource(r api.Resource) (api.Resource, error) {
	k, ok := api.KindOf(r)
	if !ok {
		return nil, fmt.Errorf("unknown resource kind %q", r.GetTypeMeta().Kind)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := k.New()
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// validationClient returns a datastore client for validate's datastore
// checks, or nil when no datastore is configured or it does not answer (then
// validate checks fields only, and says so on stderr).
func (e *Env) validationClient(ctx context.Context) *datastore.Client {
	c, err := e.Client()
	if err != nil {
		if !errors.Is(err, errNoDatastore) {
			fmt.Fprintf(e.Stderr, "note: datastore not usable (%v): checking fields only\n", oneLine(err))
		}
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := c.KV.Get(pctx, api.ResourcePrefix+"clusterinformations/default"); err != nil && !errors.Is(err, kv.ErrNotFound) {
		fmt.Fprintf(e.Stderr, "note: datastore not reachable (%v): checking fields only\n", oneLine(err))
		return nil
	}
	return c
}
