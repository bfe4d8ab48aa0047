package ctl

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// resourceList is a list of one kind as `get` prints it: kind IPPoolList,
// the store revision it was read at, and the items in key order.
type resourceList struct {
	api.TypeMeta
	ListMeta api.ListMeta   `json:"metadata"`
	Items    []api.Resource `json:"items"`

	itemKind api.KindInfo
}

// Metadata is the list's metadata under its YAML name, for templates.
func (l *resourceList) Metadata() api.ListMeta { return l.ListMeta }

// query is one thing `get` reads: a named resource, or a list when name is "".
type query struct {
	kind      api.KindInfo
	namespace string // "" with a namespaced kind: every namespace
	name      string
}

const getUsage = `calicoctl get ( (<KIND> [<NAME>...]) |
                --filename=<FILENAME> [--recursive] [--skip-empty] )
                [--output=<OUTPUT>] [--config=<CONFIG>] [--namespace=<NS>] [--all-namespaces] [--export] [--context=<context>] [--allow-version-mismatch]`

// templateHelp documents what -o go-template sees.
const templateHelp = `
Templates (-o go-template=... and go-template-file=...):
  The template runs over the list of what was read, as upstream's: one
  resource per NAME given, or one <Kind>List (with .Items) for a whole kind.
  Fields have their Go names: .ObjectMeta.Name, .ObjectMeta.Labels, .Spec.CIDR,
  .Spec.NodeSelector. For convenience .Items is also every resource read, and
  .Metadata is a resource's .ObjectMeta. Functions: join, joinAndTruncate and
  config "asnumber".
  Examples:
    calicoctl get ippools -o go-template='{{range .Items}}{{.Metadata.Name}} {{.Spec.CIDR}}{{"\n"}}{{end}}'
    calicoctl get ippools -o go-template='{{range .}}{{range .Items}}{{.ObjectMeta.Name}}{{"\n"}}{{end}}{{end}}'
`

// runGet prints resources named by kind and names (all of the kind when no
// name is given) or by a file, in one of upstream's output formats.
func runGet(ctx context.Context, e *Env, args []string) error {
	for i, a := range args {
		if a == "-a" { // upstream keeps the old spelling of -A working
			args[i] = "-A"
		}
	}
	fs := e.newFlagSet("get", getUsage)
	var o crudOptions
	var output string
	var export bool
	addFileFlags(fs, &o, "get")
	fs.StringVarP(&output, "output", "o", "ps", "Output format. One of: yaml, json, ps, wide, custom-columns=..., go-template=...,\ngo-template-file=...")
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage:\n  %s\n\nOptions:\n", getUsage)
		fs.PrintDefaults()
		fmt.Fprint(e.Stderr, templateHelp)
	}
	addNamespaceFlag(fs, &o.namespace)
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "If present, list the requested object(s) across all namespaces.")
	fs.BoolVar(&export, "export", false, "If present, returns the requested object(s) stripped of cluster-specific information.\nIgnored if <NAME> is not specified.")
	addCompatFlags(fs)
	if err := parseVerb(fs, "get", args); err != nil {
		return err
	}
	if (o.filename == "") == (fs.NArg() == 0) {
		return badUsage("get", args)
	}
	p, err := newPrinter(output, o.allNamespaces || o.namespace != "")
	if err != nil {
		return err
	}

	var queries []query
	if o.filename != "" {
		items, errs, err := e.loadInput(o.filename, o.recursive, o.skipEmpty)
		switch {
		case isEmptyInput(err):
			return err
		case err != nil:
			return fmt.Errorf("Failed to execute command: %v", err)
		case len(errs) > 0:
			return failLines("Failed to execute command: ", errs)
		}
		for _, it := range items {
			m := it.res.GetObjectMeta()
			ns, err := resolveNamespace(it.kind, m.Namespace, o.namespace, o.allNamespaces)
			if err != nil {
				return fmt.Errorf("Failed to get resources: %v", err)
			}
			queries = append(queries, query{kind: it.kind, namespace: ns, name: m.Name})
		}
	} else {
		k, ok := api.LookupKind(fs.Arg(0))
		if !ok {
			return fmt.Errorf("Failed to get resources: resource type '%s' is not supported", fs.Arg(0))
		}
		names := fs.Args()[1:]
		if len(names) == 0 {
			names = []string{""}
		} else {
			for _, n := range names {
				if n == "" {
					return errors.New("Failed to get resources: resource name may not be empty")
				}
			}
		}
		for _, n := range names {
			ns, err := resolveNamespace(k, o.namespace, o.namespace, o.allNamespaces)
			if err != nil {
				return fmt.Errorf("Failed to get resources: %v", err)
			}
			queries = append(queries, query{kind: k, namespace: ns, name: n})
		}
	}

	c, err := e.Client()
	if err != nil {
		return fmt.Errorf("Failed to create Calico API client: %v", err)
	}
	var objs []any
	var errs []string
	for _, q := range queries {
		obj, err := q.run(ctx, c)
		if err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		if r, ok := obj.(api.Resource); ok && export {
			exportMeta(r.GetObjectMeta())
		}
		objs = append(objs, obj)
	}
	if err := p.print(e.Stdout, &printCtx{ctx: ctx, client: c}, objs); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// run reads what q names.
func (q query) run(ctx context.Context, c *datastore.Client) (any, error) {
	if q.name != "" {
		if q.kind.Namespaced && q.namespace == "" {
			return nil, errors.New("cannot use --all-namespace flag for getting a single resource")
		}
		r, err := c.Get(ctx, q.kind.Kind, q.namespace, q.name)
		if err != nil {
			return nil, storeError(resourceID(q.kind, q.namespace, q.name), err)
		}
		return r, nil
	}
	items, rev, err := c.List(ctx, q.kind.Kind, q.namespace)
	if err != nil {
		return nil, err
	}
	if q.kind.Kind == api.KindTier {
		sortTiers(items)
	}
	if items == nil {
		items = []api.Resource{}
	}
	return &resourceList{
		TypeMeta: api.TypeMeta{Kind: q.kind.Kind + "List", APIVersion: api.APIVersion},
		ListMeta: api.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)},
		Items:    items,
		itemKind: q.kind,
	}, nil
}

// sortTiers orders tiers by their order, unordered ones last, as upstream lists them.
func sortTiers(items []api.Resource) {
	sort.SliceStable(items, func(i, j int) bool {
		a, _ := items[i].(*api.Tier)
		b, _ := items[j].(*api.Tier)
		if a == nil || a.Spec.Order == nil {
			return false
		}
		if b == nil || b.Spec.Order == nil {
			return true
		}
		return *a.Spec.Order < *b.Spec.Order
	})
}

// exportMeta strips what belongs to one cluster (--export).
func exportMeta(m *api.ObjectMeta) {
	m.Namespace, m.UID, m.ResourceVersion, m.CreationTimestamp = "", "", "", ""
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds = "", nil
}

// isNotFound reports whether err means the resource is not stored.
func isNotFound(err error) bool { return errors.Is(err, kv.ErrNotFound) }
